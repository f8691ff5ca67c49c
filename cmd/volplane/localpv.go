package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"volplane/internal/bootstrap"
	"volplane/internal/component"
	"volplane/internal/hostops"
	"volplane/internal/node/localpv"
)

// localPVFlags configure the local static provisioner, in `up` and in
// `node`.
type localPVFlags struct {
	discoveryDir string
	class        string
}

func (f *localPVFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.discoveryDir, "local-discovery-dir", "", "run the local static provisioner: every mount point directly under DIR becomes a local PV pinned to this node (off when empty)")
	fs.StringVar(&f.class, "local-storage-class", localpv.DefaultStorageClass, "StorageClass of the local static provisioner's PVs")
}

// ensureClass creates the class of the local PVs when the provisioner
// runs (`up`: with the admin client, before any component).
func (f *localPVFlags) ensureClass(ctx context.Context, cs kubernetes.Interface) error {
	if f.discoveryDir == "" {
		return nil
	}
	return bootstrap.EnsureLocalClass(ctx, cs, f.class)
}

// component runs the local static provisioner for node with the client
// configuration restConfig returns (the provisioner's own identity); with
// no discovery dir it only waits for the stop.
func (f *localPVFlags) component(node string, restConfig func() (*rest.Config, error)) component.Component {
	return component.Component{Name: "local provisioner", Run: func(ctx context.Context, ready func()) error {
		if f.discoveryDir == "" {
			ready()
			<-ctx.Done()
			return nil
		}
		rc, err := restConfig()
		if err != nil {
			return fmt.Errorf("local provisioner: %w", err)
		}
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return fmt.Errorf("local provisioner: %w", err)
		}
		return localpv.Run(ctx, localpv.Config{
			NodeName:     node,
			DiscoveryDir: f.discoveryDir,
			StorageClass: f.class,
			Client:       cs,
			Host:         hostops.New(),
		}, ready)
	}}
}

// errNoProvisionerKubeconfig: a node's own identity may not create PVs.
var errNoProvisionerKubeconfig = errors.New("--local-discovery-dir needs --local-provisioner-kubeconfig: the node's own identity may not create PVs ('volplane server' writes DIR/local-provisioner-kubeconfig)")
