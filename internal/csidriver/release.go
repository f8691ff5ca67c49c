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
// start to find as it was; Release logs which volumes keep it. Pools on
// the host's own filesystem have nothing to release.
func (d *Driver) Release(ctx context.Context) error {
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
	if err := d.pool.Unmount(ctx); err != nil {
		return fmt.Errorf("release pool: %w", err)
	}
	log.Info("pool image unmounted", "pool", d.pool.Dir())
	return nil
}
