package binder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// HostPathProvisionerName is upstream's name of the hostPath provisioner.
const HostPathProvisionerName = "kubernetes.io/host-path"

// HostPathProvisioner provisions kubernetes.io/host-path volumes as
// directories under one directory of the machine the controller runs on.
// Like upstream's (behind --enable-hostpath-provisioner) it is for
// single-machine tests: the directory is only on this machine.
type HostPathProvisioner struct {
	dir string
}

var (
	_ Provisioner = (*HostPathProvisioner)(nil)
	_ SpecDeleter = (*HostPathProvisioner)(nil)
)

// NewHostPathProvisioner provisions under dir.
func NewHostPathProvisioner(dir string) *HostPathProvisioner {
	return &HostPathProvisioner{dir: filepath.Clean(dir)}
}

// Name is kubernetes.io/host-path.
func (p *HostPathProvisioner) Name() string { return HostPathProvisionerName }

// Provision creates (or finds) the directory <dir>/<PV name>.
func (p *HostPathProvisioner) Provision(_ context.Context, req ProvisionRequest) (*v1.PersistentVolume, error) {
	if req.Claim.Spec.VolumeMode != nil && *req.Claim.Spec.VolumeMode == v1.PersistentVolumeBlock {
		return nil, fmt.Errorf("%s provisions only Filesystem volumes", HostPathProvisionerName)
	}
	if req.Claim.Spec.Selector != nil {
		return nil, fmt.Errorf("claim selector is not supported")
	}
	path := filepath.Join(p.dir, req.PVName)
	if err := os.MkdirAll(path, 0o777); err != nil {
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	// MkdirAll honours the umask; pods of any user write here.
	if err := os.Chmod(path, 0o777); err != nil {
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	size := req.Claim.Spec.Resources.Requests[v1.ResourceStorage]
	return &v1.PersistentVolume{
		Spec: v1.PersistentVolumeSpec{
			Capacity:    v1.ResourceList{v1.ResourceStorage: size},
			AccessModes: req.Claim.Spec.AccessModes,
			PersistentVolumeSource: v1.PersistentVolumeSource{
				HostPath: &v1.HostPathVolumeSource{Path: path},
			},
		},
	}, nil
}

// CanDelete reports whether pv is a hostPath directory under the
// provisioner's directory.
func (p *HostPathProvisioner) CanDelete(pv *v1.PersistentVolume) bool {
	_, err := p.path(pv)
	return err == nil
}

func (p *HostPathProvisioner) path(pv *v1.PersistentVolume) (string, error) {
	if pv.Spec.HostPath == nil {
		return "", fmt.Errorf("volume %s is not a hostPath volume", pv.Name)
	}
	path := filepath.Clean(pv.Spec.HostPath.Path)
	if !strings.HasPrefix(path, p.dir+string(filepath.Separator)) {
		return "", fmt.Errorf("host_path deleter only supports paths under %s but got %s", p.dir, path)
	}
	return path, nil
}

// Delete removes the volume's directory, refusing anything outside the
// provisioner's directory.
func (p *HostPathProvisioner) Delete(_ context.Context, pv *v1.PersistentVolume) error {
	path, err := p.path(pv)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(path); err != nil {
		return fmt.Errorf("deleting %s: %w", path, err)
	}
	return nil
}
