package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"volplane/internal/controller/provisioner/provbench"
)

func newBenchProvisionCommand() *cobra.Command {
	var (
		cfg       provbench.Config
		verbosity int
		upProfile string
		profile   string
	)
	cmd := &cobra.Command{
		Use:   "provision",
		Short: "Volume provisioning and binding through the built-in CSI driver on a one-node volplane up",
		Long: `Start 'volplane up' (this binary, a child process) on a fresh temporary data
dir and free loopback ports, then print: claims bound per second and claim
created -> Bound p50/p99 for --claims claims of an Immediate class of the
built-in driver (local.csi.volplane.io, 1Mi each, created at once); pod
created -> Running p50/p99 and the time until all are Running for --pods
pods created at once, each with a new claim of the default class
volplane-local (WaitForFirstConsumer); and the time until, all deleted, no
PV and no pool volume is left. Beside them: the load average, issue 20's
goal (>= 100 claims/s) and upstream's rates (references, not measured here).

Afterwards the child gets SIGTERM and the bench removes the containers,
conmon monitors, mounts and loop devices left under its data dir.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runChildBench(cmd, verbosity, func(ctx context.Context, exe string) error {
				cfg.Executable = exe
				stopProfile, err := startCPUProfile(profile)
				if err != nil {
					return err
				}
				defer stopProfile()
				if upProfile != "" {
					cfg.UpArgs = append(cfg.UpArgs, "--cpuprofile", upProfile)
				}
				return provbench.Run(ctx, cfg, cmd.OutOrStdout())
			})
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&cfg.Claims, "claims", 500, "claims of the Immediate class created at once")
	fs.IntVar(&cfg.Pods, "pods", 100, "pods created at once, each with a new claim of the default class")
	fs.StringVar(&cfg.PoolSize, "pool-size", "", "passed to 'up --pool-size' (default: up's, a 10Gi image)")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the data dir (its containers, mounts and loop devices are removed all the same)")
	fs.StringVar(&cfg.WorkDir, "work-dir", "", "where the data dir is made (default: the system's temporary directory)")
	fs.StringVar(&cfg.Runc, "runc", "runc", "runc binary for the cleanup")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Minute, "give up a wait after this (a hang, not a target)")
	fs.StringArrayVar(&cfg.UpArgs, "up-arg", nil, "an extra flag of the child 'volplane up' (repeatable), e.g. --up-arg=--controller-workers=8")
	fs.StringVar(&upProfile, "up-cpuprofile", "", "write the child volplane up's CPU profile to this file (until it stops)")
	fs.StringVar(&profile, "cpuprofile", "", "write this process's (the bench's client and informers) CPU profile to this file")
	fs.IntVarP(&verbosity, "v", "v", 0, "log verbosity")
	return cmd
}
