package controlplane

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	kcm "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
	"k8s.io/kubernetes/cmd/kube-controller-manager/names"
)

// StorageControllers are kube-controller-manager's volume controllers of
// the embedded release, by their upstream names. They never run:
// volplane's own controllers (internal/controller) take their place.
var StorageControllers = []string{
	names.PersistentVolumeBinderController,
	names.PersistentVolumeAttachDetachController,
	names.PersistentVolumeExpanderController,
	names.PersistentVolumeClaimProtectionController,
	names.PersistentVolumeProtectionController,
	names.EphemeralVolumeController,
	names.VolumeAttributesClassProtectionController,
	names.SELinuxWarningController,
}

// Controllers off for other reasons: node IPAM allocates pod CIDRs, which
// volplane's runtime does not use.
var otherDisabledControllers = []string{
	names.NodeIpamController,
}

// featureGates are set on every embedded component (they share one
// feature gate registry). Releasing the leader Lease on exit lets a
// restarted server take over at once instead of waiting for the Lease to
// expire, and keeps the controller manager from exiting the process when
// it stops.
const featureGates = "ControllerManagerReleaseLeaderElectionLockOnExit=true"

func (c *Config) controllerManagerArgs(p *PKI, kubeconfig string) []string {
	// Bootstrap tokens need two controllers upstream leaves off by
	// default: the signer of cluster-info and the cleaner of expired
	// tokens.
	controllers := []string{"*", names.BootstrapSignerController, names.TokenCleanerController}
	for _, n := range append(append([]string(nil), StorageControllers...), otherDisabledControllers...) {
		controllers = append(controllers, "-"+n)
	}
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--secure-port=0",
		"--controllers=" + strings.Join(controllers, ","),
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + p.Path(saKey),
		"--root-ca-file=" + p.Path(caCert),
		"--cluster-signing-cert-file=" + p.Path(caCert),
		"--cluster-signing-key-file=" + p.Path(caKey),
		"--cluster-name=volplane",
		"--leader-elect=" + strconv.FormatBool(c.LeaderElect),
		"--controller-shutdown-timeout=5s",
		"--profiling=false",
		"--feature-gates=" + featureGates,
	}
}

// runControllerManager runs kube-controller-manager's non-storage
// controllers until ctx is done.
func runControllerManager(ctx context.Context, args []string) error {
	s, err := kcmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return fmt.Errorf("kube-controller-manager: %w", err)
	}
	known, off, aliases := kcm.KnownControllers(), kcm.ControllersDisabledByDefault(), kcm.ControllerAliases()
	nfs := s.Flags(known, off, aliases)
	s.ParsedFlags = &nfs
	fs := pflag.NewFlagSet("kube-controller-manager", pflag.ContinueOnError)
	for _, f := range nfs.FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("kube-controller-manager: %w", err)
	}
	if err := s.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("kube-controller-manager: %w", err)
	}
	c, err := s.Config(ctx, known, off, aliases)
	if err != nil {
		return fmt.Errorf("kube-controller-manager: %w", err)
	}
	return kcm.Run(ctx, c.Complete())
}
