package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"volplane/internal/logging"
)

// newBenchCommand groups the benchmarks that print figures; each component
// adds its own child command (bench csi, bench binder, ...).
func newBenchCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Run a benchmark and print its figures",
	}
	cmd.AddCommand(newBenchCSICommand(), newBenchBinderCommand(), newBenchPodsCommand(), newBenchProvisionCommand(), newBenchSchedulerCommand())
	return cmd
}

// runChildBench runs a bench that starts this binary as a child `volplane
// up`: with a context cancelled on SIGTERM or SIGINT, whose logger shows
// only warnings unless -v asks for more (the table is the output), and
// the path of this binary for the child.
func runChildBench(cmd *cobra.Command, verbosity int, run func(ctx context.Context, exe string) error) error {
	ctx, stop, log := signalContext(cmd.Context(), verbosity)
	defer stop()
	if verbosity == 0 {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return run(logging.NewContext(ctx, log), exe)
}
