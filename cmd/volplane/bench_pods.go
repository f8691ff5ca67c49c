package main

import (
	"context"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"volplane/internal/node/podbench"
)

func newBenchPodsCommand() *cobra.Command {
	var (
		cfg       podbench.Config
		verbosity int
		upProfile string
		upV       int
	)
	cmd := &cobra.Command{
		Use:   "pods",
		Short: "Pod startup and teardown on a one-node volplane up, beside the runc floor",
		Long: `Start 'volplane up' (this binary, a child process) on a fresh temporary data
dir and free loopback ports, then print: created -> Running latency p50/p99
of a lone pod created --lone times in a row, and of --pods pods created at
once with the time until all are Running; the time to delete them all; and
the runtime's floor measured in the same run (--pods bare 'runc run' one
after another: wall, CPU, wall/cores), beside issue 17's goals and
upstream's pod-startup SLO (a reference, not measured here).

Afterwards the child gets SIGTERM and the bench removes the containers,
conmon monitors and mounts a stopped agent leaves under its data dir.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runChildBench(cmd, verbosity, func(ctx context.Context, exe string) error {
				cfg.Executable = exe
				if upV > 0 {
					cfg.UpArgs = append(cfg.UpArgs, "-v", strconv.Itoa(upV))
				}
				if upProfile != "" {
					cfg.UpArgs = append(cfg.UpArgs, "--cpuprofile", upProfile)
				}
				return podbench.Run(ctx, cfg, cmd.OutOrStdout())
			})
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&cfg.Pods, "pods", 100, "pods created at once (and bare runc runs in the floor)")
	fs.IntVar(&cfg.Lone, "lone", 20, "lone pods created one after another")
	fs.IntVar(&cfg.Updates, "updates", 100, "configMap updates timed into a running pod's volume")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the data dir (its containers and mounts are removed all the same)")
	fs.StringVar(&cfg.WorkDir, "work-dir", "", "where the data dir is made (default: the system's temporary directory)")
	fs.StringVar(&cfg.Runc, "runc", "runc", "runc binary for the floor and the cleanup")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "give up a wait after this (a hang, not a target)")
	fs.StringVar(&upProfile, "up-cpuprofile", "", "write the child volplane up's CPU profile to this file (until it stops)")
	fs.IntVar(&upV, "up-v", 0, "the child's log verbosity: 1 logs each pod's timeline (up.log in the data dir, kept with --keep)")
	fs.IntVarP(&verbosity, "v", "v", 0, "log verbosity")
	return cmd
}
