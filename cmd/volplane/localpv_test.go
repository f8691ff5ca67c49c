package main

import (
	"errors"
	"io"
	"testing"
)

// TestNodeLocalProvisionerNeedsItsKubeconfig: `volplane node` refuses
// --local-discovery-dir without the provisioner's own identity, before it
// starts anything, and accepts it with one.
func TestNodeLocalProvisionerNeedsItsKubeconfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want error
	}{
		{"discovery dir alone", []string{"--local-discovery-dir", "/mnt/disks"}, errNoProvisionerKubeconfig},
		{"with a class, still alone", []string{"--local-discovery-dir", "/mnt/disks", "--local-storage-class", "fast"}, errNoProvisionerKubeconfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := newNodeCommand()
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			cmd.SetArgs(append([]string{"--kubeconfig", "/k", "--node-name", "n"}, tc.args...))
			if err := cmd.Execute(); !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestLocalPVFlagsDefaults(t *testing.T) {
	cmd := newUpCommand()
	if err := cmd.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if f := cmd.Flags().Lookup("local-storage-class"); f == nil || f.Value.String() != "local-storage" {
		t.Errorf("--local-storage-class default: %v", f)
	}
	if f := cmd.Flags().Lookup("local-discovery-dir"); f == nil || f.Value.String() != "" {
		t.Errorf("--local-discovery-dir default (off): %v", f)
	}
}
