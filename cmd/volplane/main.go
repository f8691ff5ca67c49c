// Command volplane is the Kubernetes storage system in one binary. Each
// subcommand parses its flags into a component Config and wires components;
// everything else lives under internal/.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"volplane/internal/version"
)

func main() {
	// Embedded upstream packages register flags of their own binaries
	// (such as --version) on the global flag set at init; volplane's
	// commands declare all of theirs.
	pflag.CommandLine = pflag.NewFlagSet(os.Args[0], pflag.ExitOnError)
	root := &cobra.Command{
		Use:           "volplane",
		Short:         "The Kubernetes storage system, in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newUpCommand(),
		newServerCommand(),
		newNodeCommand(),
		newCSICommand(),
		newCSIControllerCommand(),
		newBenchCommand(),
		newVersionCommand(),
	)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "volplane:", err)
		os.Exit(1)
	}
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), version.String())
		},
	}
}
