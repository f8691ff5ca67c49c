package main

import "github.com/spf13/cobra"

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
