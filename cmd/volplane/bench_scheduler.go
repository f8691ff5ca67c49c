package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"volplane/internal/scheduler/schedbench"
)

func newBenchSchedulerCommand() *cobra.Command {
	var (
		cfg       schedbench.Config
		verbosity int
		upProfile string
	)
	cmd := &cobra.Command{
		Use:   "scheduler",
		Short: "Pods scheduled per second with one new delayed-binding claim each, beside pods without volumes",
		Long: `Start 'volplane up' (this binary, a child process) on a fresh temporary data
dir and free loopback ports, make --nodes Node objects (Ready, leases kept
fresh by the bench; no kubelet behind them) with --volumes-per-node local PVs
each of a WaitForFirstConsumer class, then create --pods pods without volumes
at once, force-delete them, and create --pods pods each with one new claim of
that class. For both shapes print pods scheduled per second (first create to
last spec.nodeName, watched) and create -> bind p50/p99, side by side, the
ratio against issue 19's goal (>= 80%), the machine's load average, and
upstream's scheduler_perf figures as references (not measured here).
The pods never run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runChildBench(cmd, verbosity, func(ctx context.Context, exe string) error {
				cfg.Executable = exe
				if upProfile != "" {
					cfg.UpArgs = append(cfg.UpArgs, "--cpuprofile", upProfile)
				}
				return schedbench.Run(ctx, cfg, cmd.OutOrStdout())
			})
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&cfg.Nodes, "nodes", 100, "Node objects made")
	fs.IntVar(&cfg.VolumesPerNode, "volumes-per-node", 10, "local PVs per node")
	fs.IntVar(&cfg.Pods, "pods", 1000, "pods per shape, created at once")
	fs.IntVar(&cfg.Workers, "workers", 50, "creates in parallel")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the data dir")
	fs.StringVar(&cfg.WorkDir, "work-dir", "", "where the data dir is made (default: the system's temporary directory)")
	fs.StringVar(&cfg.Runc, "runc", "runc", "runc binary for the cleanup of the child's node")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "give up a wait after this (a hang, not a target)")
	fs.StringVar(&upProfile, "up-cpuprofile", "", "write the child volplane up's CPU profile to this file (until it stops)")
	fs.IntVarP(&verbosity, "v", "v", 0, "log verbosity")
	return cmd
}
