package csi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"volplane/internal/csi/client"
	"volplane/internal/logging"
	"volplane/internal/node/plugins"
)

// MountDevice stages the volume at deviceMountPath (NodeStageVolume) when
// the driver has STAGE_UNSTAGE_VOLUME, and otherwise does nothing.
// vol_data.json is written beside deviceMountPath first, so that
// UnmountDevice knows the driver and the volume after a restart. Calling
// it again is safe: NodeStageVolume is idempotent by the spec.
func (p *Plugin) MountDevice(ctx context.Context, spec *plugins.Spec, deviceMountPath string) error {
	src, err := source(spec)
	if err != nil {
		return err
	}
	if spec.Block {
		return p.stageBlock(ctx, spec, src, deviceMountPath)
	}
	c, caps, err := p.driver(ctx, src.Driver)
	if err != nil {
		return fmt.Errorf("kubernetes.io/csi: attacher.MountDevice failed to create newCsiDriverClient: %w", err)
	}
	pubCtx, attachID, err := p.publishContext(ctx, spec, src)
	if err != nil {
		return err
	}
	if err := writeVolData(filepath.Dir(deviceMountPath), volData{
		SpecVolID: spec.PV.Name, VolumeHandle: src.VolumeHandle, DriverName: src.Driver,
		NodeName: p.host.NodeName, AttachmentID: attachID, VolumeLifecycleMode: "Persistent",
	}); err != nil {
		return err
	}
	if !caps.StageUnstage {
		logging.FromContext(ctx).Debug("csi driver does not stage; MountDevice is a no-op", "driver", src.Driver)
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
	return c.NodeStageVolume(ctx, &client.NodeStageRequest{
		VolumeID:       src.VolumeHandle,
		PublishContext: pubCtx,
		StagingPath:    deviceMountPath,
		Capability:     cp,
		Secrets:        secrets,
		Context:        src.VolumeAttributes,
	})
}

// UnmountDevice unstages the volume (NodeUnstageVolume, when the driver
// stages) and removes deviceMountPath, vol_data.json and their
// directory. The driver and volume come from vol_data.json; without it
// an unmounted path is just removed, a mounted one is an error (nothing
// says whose it is).
func (p *Plugin) UnmountDevice(ctx context.Context, deviceMountPath string) error {
	if pv := p.blockStagingPV(deviceMountPath); pv != "" {
		return p.unstageBlock(ctx, pv, deviceMountPath)
	}
	data, err := readVolData(filepath.Dir(deviceMountPath))
	if errors.Is(err, os.ErrNotExist) {
		return p.removeMountDir(deviceMountPath)
	}
	if err != nil {
		return err
	}
	c, caps, err := p.driver(ctx, data.DriverName)
	if err != nil {
		return fmt.Errorf("kubernetes.io/csi: attacher.UnmountDevice failed to create newCsiDriverClient: %w", err)
	}
	if caps.StageUnstage {
		if err := c.NodeUnstageVolume(ctx, data.VolumeHandle, deviceMountPath); err != nil {
			return err
		}
	}
	return p.removeMountDir(deviceMountPath)
}
