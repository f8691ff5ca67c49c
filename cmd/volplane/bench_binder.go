package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newBenchBinderCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "binder",
		Short: "PV controller throughput against the embedded API",
		RunE:  func(*cobra.Command, []string) error { return errors.New("not built yet") },
	}
}
