package csi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"volplane/internal/csi/client"
	"volplane/internal/node/plugins"
)

// Raw block volumes (volumeMode: Block), laid out as upstream's
// csi_block: staged at <root>/plugins/kubernetes.io/csi/volumeDevices/staging/<pv>,
// published per pod at .../volumeDevices/publish/<pv>/<pod uid> (a file
// the driver binds the device on), vol_data.json in
// .../volumeDevices/<pv>/data.

func (p *Plugin) blockDir() string {
	return filepath.Join(p.host.RootDir, "plugins", PluginName, "volumeDevices")
}

func (p *Plugin) blockStagingPath(pv string) string {
	return filepath.Join(p.blockDir(), "staging", pv)
}

func (p *Plugin) blockPublishPath(pv string, podUID types.UID) string {
	return filepath.Join(p.blockDir(), "publish", pv, string(podUID))
}

func (p *Plugin) blockDataDir(pv string) string {
	return filepath.Join(p.blockDir(), pv, "data")
}

// blockStagingPV returns the PV name of a block staging path, or "" for
// any other path.
func (p *Plugin) blockStagingPV(path string) string {
	if filepath.Dir(path) == filepath.Join(p.blockDir(), "staging") {
		return filepath.Base(path)
	}
	return ""
}

// stageBlock is MountDevice of a block volume.
func (p *Plugin) stageBlock(ctx context.Context, spec *plugins.Spec, src *corev1.CSIPersistentVolumeSource, stagingPath string) error {
	c, caps, err := p.driver(ctx, src.Driver)
	if err != nil {
		return fmt.Errorf("kubernetes.io/csi: blockMapper.SetUpDevice failed to get CSI client: %w", err)
	}
	pubCtx, attachID, err := p.publishContext(ctx, spec, src)
	if err != nil {
		return err
	}
	if err := writeVolData(p.blockDataDir(spec.PV.Name), volData{
		SpecVolID: spec.PV.Name, VolumeHandle: src.VolumeHandle, DriverName: src.Driver,
		NodeName: p.host.NodeName, AttachmentID: attachID, VolumeLifecycleMode: "Persistent",
	}); err != nil {
		return err
	}
	if !caps.StageUnstage {
		return nil
	}
	cp, err := capability(spec, caps)
	if err != nil {
		return err
	}
	secrets, err := p.secrets(ctx, src.NodeStageSecretRef)
	if err != nil {
		return err
	}
	return c.NodeStageVolume(ctx, &client.NodeStageRequest{VolumeID: src.VolumeHandle, PublishContext: pubCtx,
		StagingPath: stagingPath, Capability: cp, Secrets: secrets, Context: src.VolumeAttributes})
}

// unstageBlock is UnmountDevice of a block volume.
func (p *Plugin) unstageBlock(ctx context.Context, pv, stagingPath string) error {
	dataDir := p.blockDataDir(pv)
	data, err := readVolData(dataDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err == nil {
		c, caps, err := p.driver(ctx, data.DriverName)
		if err != nil {
			return fmt.Errorf("kubernetes.io/csi: blockMapper.TearDownDevice failed to get CSI client: %w", err)
		}
		if caps.StageUnstage {
			if err := c.NodeUnstageVolume(ctx, data.VolumeHandle, stagingPath); err != nil {
				return err
			}
		}
	}
	if err := p.removeMountDir(stagingPath); err != nil {
		return err
	}
	for _, path := range []string{filepath.Join(dataDir, volDataFile), dataDir, filepath.Dir(dataDir)} {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// MapPodDevice publishes a block volume for the pod (NodePublishVolume
// with a block capability) at .../volumeDevices/publish/<pv>/<pod uid>
// and returns that path, which the driver has bound the device on.
func (p *Plugin) MapPodDevice(ctx context.Context, args plugins.SetUpArgs) (string, error) {
	spec := args.Spec
	src, err := source(spec)
	if err != nil {
		return "", err
	}
	c, caps, err := p.driver(ctx, src.Driver)
	if err != nil {
		return "", fmt.Errorf("kubernetes.io/csi: blockMapper.MapPodDevice failed to get CSI client: %w", err)
	}
	obj, err := p.driverObject(ctx, src.Driver)
	if err != nil {
		return "", err
	}
	pubCtx, _, err := p.publishContext(ctx, spec, src)
	if err != nil {
		return "", err
	}
	cp, err := capability(spec, caps)
	if err != nil {
		return "", err
	}
	secrets, err := p.secrets(ctx, src.NodePublishSecretRef)
	if err != nil {
		return "", err
	}
	tokens, err := p.tokens(ctx, obj, args.Pod)
	if err != nil {
		return "", err
	}
	target := p.blockPublishPath(spec.PV.Name, args.Pod.UID)
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return "", err
	}
	req := &client.NodePublishRequest{VolumeID: src.VolumeHandle, PublishContext: pubCtx, TargetPath: target,
		Capability: cp, ReadOnly: spec.ReadOnly, Secrets: secrets, Context: volumeContext(src, obj, args.Pod, tokens)}
	if caps.StageUnstage {
		req.StagingPath = p.blockStagingPath(spec.PV.Name)
	}
	if err := c.NodePublishVolume(ctx, req); err != nil {
		return "", err
	}
	return target, nil
}

// UnmapPodDevice unpublishes the pod's block volume and removes its
// publish path.
func (p *Plugin) UnmapPodDevice(ctx context.Context, spec *plugins.Spec, podUID types.UID) error {
	src, err := source(spec)
	if err != nil {
		return err
	}
	c, _, err := p.driver(ctx, src.Driver)
	if err != nil {
		return fmt.Errorf("kubernetes.io/csi: blockMapper.UnmapPodDevice failed to get CSI client: %w", err)
	}
	target := p.blockPublishPath(spec.PV.Name, podUID)
	if err := c.NodeUnpublishVolume(ctx, src.VolumeHandle, target); err != nil {
		return err
	}
	if mounted, err := p.host.Ops.IsMountPoint(target); err != nil || mounted {
		return fmt.Errorf("kubernetes.io/csi: %s is still mounted (%v)", target, err)
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	_ = os.Remove(filepath.Dir(target)) // publish/<pv>, once empty
	return nil
}
