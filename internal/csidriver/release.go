package csidriver

import (
	"context"
	"fmt"

	"volplane/internal/csidriver/pool"
	"volplane/internal/logging"
)

// Release is the driver's clean stop, once it no longer serves: a pool
// that fell back to a btrfs image is unmounted (and its loop device
// detached) when no volume is staged or published on this node. While one
// is, its mounts live on the pool, so the pool stays mounted for the next
// start to find as it was; Release logs which volumes keep it. So does
// any other mount of the pool's filesystem (the node's size-limited
// emptyDirs are subvolumes of the pool, bind-mounted into their pods).
// Pools on the host's own filesystem have nothing to release. First the
// records' changes are folded into their files (state.Store.Fold), so
// that after a clean stop the files alone say what the driver has.
func (d *Driver) Release(ctx context.Context) error {
	if err := d.store.Fold(); err != nil {
		logging.FromContext(ctx).Warn("the driver's records stay in its journal until the next start", "err", err)
	}
	if d.pool.Mode() != pool.ModeBtrfsImage {
		return nil
	}
	var inUse []string
	for _, v := range d.store.ListVolumes() {
		if v.Staged != nil || len(v.Targets) > 0 {
			inUse = append(inUse, v.ID)
		}
	}
	log := logging.FromContext(ctx)
	if len(inUse) > 0 {
		log.Info("pool image stays mounted: volumes are staged on this node", "pool", d.pool.Dir(), "volumes", inUse)
		return nil
	}
	others, err := d.otherPoolMounts()
	if err != nil {
		return fmt.Errorf("release pool: %w", err)
	}
	if len(others) > 0 {
		log.Info("pool image stays mounted: other mounts use its filesystem", "pool", d.pool.Dir(), "mounts", others)
		return nil
	}
	if err := d.pool.Unmount(ctx); err != nil {
		return fmt.Errorf("release pool: %w", err)
	}
	log.Info("pool image unmounted", "pool", d.pool.Dir())
	return nil
}

// otherPoolMounts lists the mount points, other than the pool's own, of
// the pool's filesystem.
func (d *Driver) otherPoolMounts() ([]string, error) {
	mps, err := d.host.Mounts()
	if err != nil {
		return nil, err
	}
	own, ok := mountAtIn(mps, d.pool.DataDir())
	if !ok {
		return nil, nil
	}
	var out []string
	for _, mp := range mps {
		if mp.Path != own.Path && mp.Major == own.Major && mp.Minor == own.Minor {
			out = append(out, mp.Path)
		}
	}
	return out, nil
}
