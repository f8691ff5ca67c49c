package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newCSICommand runs the built-in CSI driver alone. Placeholder until the
// driver lands.
func newCSICommand() *cobra.Command {
	return &cobra.Command{
		Use:   "csi",
		Short: "Run the built-in CSI driver local.csi.volplane.io on a unix socket",
		RunE:  func(*cobra.Command, []string) error { return errors.New("not built yet") },
	}
}

func newBenchCSICommand() *cobra.Command {
	return &cobra.Command{
		Use:   "csi",
		Short: "CSI driver latency: create+stage+publish and teardown",
		RunE:  func(*cobra.Command, []string) error { return errors.New("not built yet") },
	}
}
