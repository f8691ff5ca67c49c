package csidriver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"volplane/internal/csidriver/state"
)

// recover settles what a previous run left behind, before the driver
// serves: deletions in progress are finished (the user asked for them),
// creations in progress are undone (nobody was ever told about them),
// loop devices of staged block volumes are attached again and staging
// mounts that vanished (a reboot) are mounted again; publications whose
// mounts are gone are forgotten, for the CO to publish again. Data found
// in the pool without a record is reported and never deleted.
func (d *Driver) recover(ctx context.Context) error {
	log := d.logger(ctx)
	for _, g := range d.store.ListGroups() {
		if g.Phase != state.Ready {
			log.Info("settling an interrupted group snapshot", "group", g.ID, "phase", g.Phase)
			if err := d.deleteGroup(ctx, &g); err != nil {
				return err
			}
		}
	}
	for _, s := range d.store.ListSnapshots() {
		if s.Phase != state.Ready {
			log.Info("settling an interrupted snapshot", "snapshot", s.ID, "phase", s.Phase)
			if err := d.deleteSnapshot(ctx, &s); err != nil {
				return err
			}
		}
	}
	for _, v := range d.store.ListVolumes() {
		switch v.Phase {
		case state.Creating:
			log.Info("undoing an interrupted create", "volume", v.ID, "name", v.Name)
			if err := d.deleteBacking(ctx, &v); err != nil {
				return hostError(err, "undo create of volume %s", v.ID)
			}
			if err := d.store.DeleteVolume(v.ID); err != nil {
				return err
			}
		case state.Deleting:
			log.Info("finishing an interrupted delete", "volume", v.ID, "name", v.Name)
			if err := d.deleteVolume(ctx, &v); err != nil {
				return err
			}
		default:
			if err := d.reattach(ctx, &v); err != nil {
				return err
			}
		}
	}
	d.reportOrphans(ctx)
	return nil
}

// reattach brings a volume's node state back in line with the host.
func (d *Driver) reattach(ctx context.Context, v *state.Volume) error {
	log := d.logger(ctx)
	before, _ := d.store.GetVolume(v.ID)
	if v.Staged != nil {
		if _, err := os.Stat(v.Staged.Path); errors.Is(err, os.ErrNotExist) && !v.Staged.Block {
			// The CO removed the staging directory: it considers the
			// volume unstaged.
			log.Info("staging path is gone; forgetting the staging", "volume", v.ID, "path", v.Staged.Path)
			if v.Kind == state.KindBlock {
				if dev, err := d.host.LoopFind(d.pool.BlockPath(v.ID)); err == nil && dev != "" {
					_ = d.host.LoopDetach(ctx, dev)
				}
			}
			v.Staged = nil
		} else {
			dev := v.Staged.Device
			if err := d.stage(ctx, v, v.Staged, ""); err != nil {
				return hostError(err, "restore staging of volume %s", v.ID)
			}
			if dev != v.Staged.Device {
				log.Info("re-attached block volume", "volume", v.ID, "device", v.Staged.Device)
			}
		}
	}
	for t := range v.Targets {
		mp, ok, err := d.mountAt(t)
		if err != nil {
			return hostError(err, "read mount table")
		}
		if !ok || !mountIsVolume(mp, v) || v.Staged == nil {
			log.Info("publication is gone; forgetting it", "volume", v.ID, "target", t)
			delete(v.Targets, t)
		}
	}
	if sameRecord(before, *v) {
		return nil
	}
	return d.store.PutVolume(*v)
}

func sameRecord(a, b state.Volume) bool {
	if (a.Staged == nil) != (b.Staged == nil) || len(a.Targets) != len(b.Targets) {
		return false
	}
	if a.Staged != nil && a.Staged.Device != b.Staged.Device {
		return false
	}
	return a.Formatted == b.Formatted && a.FilesystemBytes == b.FilesystemBytes
}

// reportOrphans logs pool entries that no record claims. They may be a
// user's data from a lost metadata directory: never deleted automatically.
func (d *Driver) reportOrphans(ctx context.Context) {
	known := map[string]bool{}
	for _, v := range d.store.ListVolumes() {
		known[filepath.Base(d.volumePath(&v))] = true
	}
	for _, s := range d.store.ListSnapshots() {
		known[s.ID] = true
		known[s.ID+".img"] = true
	}
	for _, sub := range []string{"volumes", "blocks", "snapshots"} {
		entries, err := os.ReadDir(filepath.Join(d.pool.DataDir(), sub))
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !known[e.Name()] && !strings.HasPrefix(e.Name(), ".") {
				d.logger(ctx).Warn("pool holds data no record claims; leaving it alone",
					"path", filepath.Join(d.pool.DataDir(), sub, e.Name()))
			}
		}
	}
}
