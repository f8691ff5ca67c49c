package csidriver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"volplane/internal/csidriver/state"
	"volplane/internal/hostops"
)

// recover settles what a previous run left behind, before the driver
// serves: deletions in progress are finished (the user asked for them),
// creations in progress are undone (nobody was ever told about them),
// loop devices of staged block volumes are attached again and staging
// mounts that vanished (a reboot) are mounted again; publications whose
// mounts are gone are forgotten, for the CO to publish again. Data found
// in the pool without a record is reported and never deleted.
//
// One object that cannot be settled does not keep the driver from
// serving the others: its failure is logged, its record stays as it is
// (a retry of the CO's call, or the next start, tries again) and the
// health RPCs report it.
func (d *Driver) recover(ctx context.Context) {
	log := d.logger(ctx)
	failed := func(what, id string, err error) {
		log.Error("could not settle "+what+" left by the previous run", "id", id, "err", err)
	}
	for _, g := range d.store.ListGroups() {
		if g.Phase != state.Ready {
			log.Info("settling an interrupted group snapshot", "group", g.ID, "phase", g.Phase)
			if err := d.deleteGroup(ctx, &g); err != nil {
				failed("group snapshot", g.ID, err)
			}
		}
	}
	for _, s := range d.store.ListSnapshots() {
		if s.Phase != state.Ready {
			log.Info("settling an interrupted snapshot", "snapshot", s.ID, "phase", s.Phase)
			if err := d.deleteSnapshot(ctx, &s); err != nil {
				failed("snapshot", s.ID, err)
			}
		}
	}
	for _, v := range d.store.ListVolumes() {
		var err error
		switch v.Phase {
		case state.Creating:
			log.Info("undoing an interrupted create", "volume", v.ID, "name", v.Name)
			if err = d.deleteBacking(ctx, &v); err == nil {
				err = d.store.DeleteVolume(v.ID)
			}
		case state.Deleting:
			log.Info("finishing an interrupted delete", "volume", v.ID, "name", v.Name)
			err = d.deleteVolume(ctx, &v)
		default:
			err = d.reattach(ctx, &v)
		}
		if err != nil {
			failed("volume", v.ID, err)
		}
	}
	d.reportOrphans(ctx)
}

// reattach brings a volume's node state back in line with the host.
func (d *Driver) reattach(ctx context.Context, v *state.Volume) error {
	log := d.logger(ctx)
	before := v.Clone()
	if v.Staged != nil {
		if _, err := os.Stat(v.Staged.Path); errors.Is(err, os.ErrNotExist) && !v.Staged.Block {
			// The CO removed the staging directory: it considers the
			// volume unstaged.
			log.Info("staging path is gone; forgetting the staging", "volume", v.ID, "path", v.Staged.Path)
			if v.Kind == state.KindBlock {
				_ = hostops.DetachFile(ctx, d.host, d.pool.BlockPath(v.ID))
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
		// A publication of a staged volume is a bind of its staging;
		// an ephemeral volume is published with no staging at all.
		if !ok || !mountIsVolume(mp, v) || (v.Staged == nil && !isEphemeral(v)) {
			log.Info("publication is gone; forgetting it", "volume", v.ID, "target", t)
			delete(v.Targets, t)
		}
	}
	if reflect.DeepEqual(before, *v) {
		return nil
	}
	return d.store.PutVolume(*v)
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
