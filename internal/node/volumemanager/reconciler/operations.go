package reconciler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	storagehelpers "k8s.io/component-helpers/storage/volume"

	"volplane/internal/node/plugins"
	"volplane/internal/node/subpath"
	"volplane/internal/node/volumemanager/cache"
	"volplane/internal/node/volumemanager/reconstruction"
)

func (r *Reconciler) record(v cache.VolumeToMount, m cache.MountedVolume) *reconstruction.Record {
	return &reconstruction.Record{
		Plugin: v.Plugin.Name(), VolumeName: v.VolumeName, OuterName: v.OuterName, PodUID: v.Pod.UID,
		Dir: m.Dir, HostPath: m.HostPath, DevicePath: m.DevicePath, ReadOnly: v.Spec.ReadOnly,
		Block: v.Spec.Block, Volume: v.Spec.Volume, PV: v.Spec.PV,
	}
}

func (r *Reconciler) checkNodeAffinity(ctx context.Context, v cache.VolumeToMount) error {
	if v.Spec.PV == nil || v.Spec.PV.Spec.NodeAffinity == nil {
		return nil
	}
	labels, err := r.cfg.NodeLabels(ctx)
	if err != nil {
		return err
	}
	return storagehelpers.CheckNodeAffinity(v.Spec.PV, labels)
}

// setUp mounts (or maps) the volume for the pod.
func (r *Reconciler) setUp(ctx context.Context, v cache.VolumeToMount) error {
	reason, prefix := "FailedMount", "MountVolume"
	if v.Spec.Block {
		reason, prefix = "FailedMapVolume", "MapVolume"
	}
	if err := r.checkNodeAffinity(ctx, v); err != nil {
		// FailedMount for a block volume too, as upstream's kubelet
		// reports it.
		return r.event(v, "FailedMount", prefix+".NodeAffinity check failed", err)
	}
	m := cache.MountedVolume{
		VolumeName: v.VolumeName, OuterName: v.OuterName, PodUID: v.Pod.UID, Plugin: v.Plugin,
		Spec: v.Spec, ReadOnly: v.Spec.ReadOnly,
	}
	if v.Spec.Block {
		m.Dir = filepath.Join(plugins.PodDeviceDir(r.cfg.RootDir, v.Pod.UID, v.Plugin.Name()), plugins.SpecName(v.Spec))
		m.DevicePath = m.Dir
	} else {
		m.Dir = plugins.PodVolumeDir(r.cfg.RootDir, v.Pod.UID, v.Plugin.Name(), plugins.SpecName(v.Spec))
		m.HostPath = m.Dir
		if pp, ok := v.Plugin.(plugins.PathPlugin); ok {
			m.HostPath = pp.VolumePath(v.Spec)
		}
		if cp, ok := v.Plugin.(plugins.ContentDirPlugin); ok {
			m.HostPath = cp.ContentDir(m.Dir)
		}
	}
	// The record goes first: from here on a crash leaves something a
	// restart must find.
	if err := r.cfg.Store.Write(r.record(v, m)); err != nil {
		return r.event(v, reason, prefix+".SetUp failed", err)
	}
	var err error
	if v.Spec.Block {
		err = r.mapDevice(ctx, v, m)
		if err != nil {
			err = r.event(v, reason, attachStep(prefix, prefix+".MapPodDevice failed", err), err)
		}
	} else {
		err = r.setUpDir(ctx, v, m)
		if err != nil {
			err = r.event(v, reason, attachStep(prefix, prefix+".SetUp failed", err), err)
		}
	}
	if err != nil {
		// Whatever SetUp left behind is torn down if the pod goes away.
		m.Uncertain = true
		r.cfg.Actual.MarkMounted(m)
		return err
	}
	r.cfg.Actual.MarkMounted(m)
	return nil
}

func (r *Reconciler) setUpDir(ctx context.Context, v cache.VolumeToMount, m cache.MountedVolume) error {
	if _, ok := v.Plugin.(plugins.PathPlugin); !ok {
		if err := os.MkdirAll(m.Dir, 0o750); err != nil {
			return err
		}
	}
	args := plugins.SetUpArgs{Spec: v.Spec, Pod: v.Pod, Dir: m.Dir}
	if d, ok := r.cfg.Actual.Device(v.VolumeName); ok && d.Mounted {
		args.DeviceMountPath = d.MountPath
	}
	if sc := v.Pod.Spec.SecurityContext; sc != nil {
		args.FSGroup, args.FSGroupChangePolicy = sc.FSGroup, sc.FSGroupChangePolicy
	}
	return v.Plugin.SetUp(ctx, args)
}

// globalMapPath is upstream's per-pod bind mount of a block device:
// <root>/plugins/kubernetes.io~<plugin>/volumeDevices/<volume>/<pod uid>.
func (r *Reconciler) globalMapPath(m cache.MountedVolume) string {
	return filepath.Join(r.cfg.RootDir, "plugins", plugins.EscapeName(m.Plugin.Name()), "volumeDevices",
		plugins.SpecName(m.Spec), string(m.PodUID))
}

func (r *Reconciler) mapDevice(ctx context.Context, v cache.VolumeToMount, m cache.MountedVolume) error {
	dev, err := r.blockDevice(ctx, v, m)
	if err != nil {
		return err
	}
	global := r.globalMapPath(m)
	if err := os.MkdirAll(filepath.Dir(global), 0o750); err != nil {
		return err
	}
	if mounted, err := r.cfg.Ops.IsMountPoint(global); err != nil {
		return err
	} else if !mounted {
		f, err := os.OpenFile(global, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		f.Close()
		if err := r.cfg.Ops.BindMount(ctx, dev, global, nil); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(m.Dir), 0o750); err != nil {
		return err
	}
	if cur, err := os.Readlink(m.Dir); err == nil && cur == dev {
		return nil
	}
	if err := os.Remove(m.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Symlink(dev, m.Dir)
}

// blockDevice is the device to map for the pod: per pod from a
// PodBlockMapper, else the plugin's BlockDevice.
func (r *Reconciler) blockDevice(ctx context.Context, v cache.VolumeToMount, m cache.MountedVolume) (string, error) {
	if pm, ok := v.Plugin.(plugins.PodBlockMapper); ok {
		args := plugins.SetUpArgs{Spec: v.Spec, Pod: v.Pod, Dir: m.Dir}
		if d, ok := r.cfg.Actual.Device(v.VolumeName); ok && d.Mounted {
			args.DeviceMountPath = d.MountPath
		}
		return pm.MapPodDevice(ctx, args)
	}
	bm, ok := v.Plugin.(plugins.BlockMapper)
	if !ok {
		return "", fmt.Errorf("volume plugin %s does not support block volumes", v.Plugin.Name())
	}
	return bm.BlockDevice(ctx, v.Spec)
}

func (r *Reconciler) unmapDevice(ctx context.Context, m cache.MountedVolume) error {
	if err := os.Remove(m.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	global := r.globalMapPath(m)
	for {
		mounted, err := r.cfg.Ops.IsMountPoint(global)
		if err != nil {
			return err
		}
		if !mounted {
			break
		}
		if err := r.cfg.Ops.Unmount(ctx, global); err != nil {
			return err
		}
	}
	if err := os.Remove(global); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	_ = os.Remove(filepath.Dir(global)) // the volume's directory, once empty
	if pm, ok := m.Plugin.(plugins.PodBlockMapper); ok {
		if err := pm.UnmapPodDevice(ctx, m.Spec, m.PodUID); err != nil {
			return err
		}
	}
	return nil
}

// tearDown takes the volume out of the pod.
func (r *Reconciler) tearDown(ctx context.Context, m cache.MountedVolume) error {
	podDir := r.cfg.Store.PodDir(m.PodUID)
	if err := subpath.Clean(ctx, r.cfg.Ops, podDir, m.OuterName); err != nil {
		return fmt.Errorf("clean subpaths of volume %q: %w", m.OuterName, err)
	}
	if m.Spec.Block {
		if err := r.unmapDevice(ctx, m); err != nil {
			return fmt.Errorf("UnmapVolume.UnmapDevice failed for volume %q: %w", m.OuterName, err)
		}
	} else {
		if err := m.Plugin.TearDown(ctx, m.Dir); err != nil {
			return fmt.Errorf("UnmountVolume.TearDown failed for volume %q: %w", m.OuterName, err)
		}
		if mounted, err := r.cfg.Ops.IsMountPoint(m.Dir); err != nil || mounted {
			return fmt.Errorf("UnmountVolume.TearDown for volume %q left %s mounted (%v)", m.OuterName, m.Dir, err)
		}
		if err := os.Remove(m.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove volume directory: %w", err)
		}
	}
	if err := r.cfg.Store.Remove(m.PodUID, m.Plugin.Name(), m.OuterName); err != nil {
		return err
	}
	r.cfg.Actual.MarkUnmounted(m.VolumeName, m.PodUID)
	return nil
}

func (r *Reconciler) mountDevice(ctx context.Context, v cache.VolumeToMount, dm plugins.DeviceMounter) error {
	// Upstream's words: a block volume's device is set up (SetUpDevice)
	// and its failure is a FailedMapVolume.
	reason, prefix, failed := "FailedMount", "MountVolume", "MountVolume.MountDevice failed"
	if v.Spec.Block {
		reason, prefix, failed = "FailedMapVolume", "MapVolume", "MapVolume.SetUpDevice failed"
	}
	if err := r.checkNodeAffinity(ctx, v); err != nil {
		return r.event(v, "FailedMount", prefix+".NodeAffinity check failed", err)
	}
	path, err := dm.DeviceMountPath(v.Spec)
	if err != nil {
		return r.event(v, reason, failed, err)
	}
	rec := &reconstruction.DeviceRecord{Plugin: v.Plugin.Name(), VolumeName: v.VolumeName, MountPath: path,
		Volume: v.Spec.Volume, PV: v.Spec.PV, ReadOnly: v.Spec.ReadOnly, Block: v.Spec.Block}
	if err := r.cfg.Store.WriteDevice(rec); err != nil {
		return r.event(v, reason, failed, err)
	}
	err = os.MkdirAll(path, 0o750)
	if err == nil {
		err = dm.MountDevice(ctx, v.Spec, path)
	}
	if err != nil {
		// Whatever MountDevice did is undone if no pod wants the volume
		// any more (the record is kept for that).
		r.cfg.Actual.MarkDeviceUncertain(v.VolumeName, v.Plugin, v.Spec, path)
		return r.event(v, reason, attachStep(prefix, failed, err), err)
	}
	r.cfg.Actual.MarkDeviceMounted(v.VolumeName, v.Plugin, v.Spec, path)
	return nil
}

// attachStep names the failed step as upstream's kubelet does: an
// attachment found incomplete (plugins.AttachError) fails its
// WaitForAttach step, whichever step of ours found it; other errors keep
// failed.
func attachStep(prefix, failed string, err error) string {
	if _, ok := errors.AsType[*plugins.AttachError](err); ok {
		return prefix + ".WaitForAttach failed"
	}
	return failed
}

func (r *Reconciler) unmountDevice(ctx context.Context, d cache.Device) error {
	dm, ok := d.Plugin.(plugins.DeviceMounter)
	if !ok {
		r.cfg.Actual.MarkDeviceUnmounted(d.VolumeName)
		return nil
	}
	if err := dm.UnmountDevice(ctx, d.MountPath); err != nil {
		return fmt.Errorf("UnmountDevice failed for volume %q: %w", d.VolumeName, err)
	}
	if err := r.cfg.Store.RemoveDevice(d.Plugin.Name(), d.VolumeName); err != nil {
		return err
	}
	r.cfg.Actual.MarkDeviceUnmounted(d.VolumeName)
	return nil
}
