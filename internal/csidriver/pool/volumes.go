package pool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"volplane/internal/atomicfile"
	"volplane/internal/hostops"
)

// Every create below is atomic-or-absent and idempotent: a btrfs subvolume
// or snapshot appears whole or not at all, files and project-quota trees
// are built under a .<name>.tmp name and renamed. A create that finds its
// result already there (a retry after a crash) only re-applies the limit.
// Every delete of something missing succeeds.

// DirPath is where directory volume id lives.
func (p *Pool) DirPath(id string) string { return filepath.Join(p.data, "volumes", id) }

// BlockPath is the backing file of block volume id.
func (p *Pool) BlockPath(id string) string { return filepath.Join(p.data, "blocks", id+".img") }

// DirSnapshotPath is where a snapshot of a directory volume lives.
func (p *Pool) DirSnapshotPath(id string) string { return filepath.Join(p.data, "snapshots", id) }

// BlockSnapshotPath is the file of a snapshot of a block volume.
func (p *Pool) BlockSnapshotPath(id string) string {
	return filepath.Join(p.data, "snapshots", id+".img")
}

func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// CreateDir makes an empty directory volume limited to limit bytes.
// projectID is used in project-quota mode only.
func (p *Pool) CreateDir(ctx context.Context, id string, limit int64, projectID uint32) error {
	path := p.DirPath(id)
	ok, err := exists(path)
	if err != nil {
		return err
	}
	if !ok {
		if p.Btrfs() {
			err = p.host.BtrfsSubvolumeCreate(ctx, path)
		} else {
			err = p.buildTree(path, func(tmp string) error { return os.Mkdir(tmp, 0o755) })
		}
		if err != nil {
			return fmt.Errorf("create directory volume: %w", err)
		}
	}
	return p.SetDirLimit(ctx, id, limit, projectID)
}

// SetDirLimit changes the capacity of a directory volume.
func (p *Pool) SetDirLimit(ctx context.Context, id string, limit int64, projectID uint32) error {
	path := p.DirPath(id)
	var err error
	if p.Btrfs() {
		err = p.host.BtrfsQgroupLimit(ctx, path, limit)
	} else {
		err = p.host.SetProjectQuota(ctx, path, projectID, limit)
	}
	if err != nil {
		return fmt.Errorf("limit directory volume to %d bytes: %w", limit, err)
	}
	return nil
}

// DirUsage returns the bytes a directory volume holds and its limit.
func (p *Pool) DirUsage(ctx context.Context, id string, projectID uint32) (used, limit int64, err error) {
	if p.Btrfs() {
		return p.host.BtrfsQgroupUsage(ctx, p.DirPath(id))
	}
	return p.host.ProjectQuotaUsage(ctx, p.DirPath(id), projectID)
}

// DeleteDir deletes a directory volume and everything in it.
func (p *Pool) DeleteDir(ctx context.Context, id string) error {
	return p.deleteTree(ctx, p.DirPath(id))
}

func (p *Pool) deleteTree(ctx context.Context, path string) error {
	if p.Btrfs() {
		if err := p.host.BtrfsSubvolumeDelete(ctx, path); err != nil {
			return fmt.Errorf("delete subvolume: %w", err)
		}
		return nil
	}
	return os.RemoveAll(path)
}

// SnapshotDir copies directory volume volID to snapshot snapID: a
// read-only btrfs snapshot, or a reflink/copy of the tree.
func (p *Pool) SnapshotDir(ctx context.Context, volID, snapID string) error {
	dst := p.DirSnapshotPath(snapID)
	if ok, err := exists(dst); err != nil || ok {
		return err
	}
	if p.Btrfs() {
		if err := p.host.BtrfsSubvolumeSnapshot(ctx, p.DirPath(volID), dst, true); err != nil {
			return fmt.Errorf("snapshot directory volume: %w", err)
		}
		return nil
	}
	return p.buildTree(dst, func(tmp string) error { return copyTree(ctx, p.host, p.DirPath(volID), tmp) })
}

// DeleteDirSnapshot deletes a snapshot of a directory volume.
func (p *Pool) DeleteDirSnapshot(ctx context.Context, snapID string) error {
	return p.deleteTree(ctx, p.DirSnapshotPath(snapID))
}

// RestoreDir makes directory volume volID from snapshot snapID.
func (p *Pool) RestoreDir(ctx context.Context, snapID, volID string, limit int64, projectID uint32) error {
	return p.copyDir(ctx, p.DirSnapshotPath(snapID), volID, limit, projectID)
}

// CloneDir makes directory volume volID as a copy of volume srcID.
func (p *Pool) CloneDir(ctx context.Context, srcID, volID string, limit int64, projectID uint32) error {
	return p.copyDir(ctx, p.DirPath(srcID), volID, limit, projectID)
}

func (p *Pool) copyDir(ctx context.Context, src, volID string, limit int64, projectID uint32) error {
	dst := p.DirPath(volID)
	ok, err := exists(dst)
	if err != nil {
		return err
	}
	if !ok {
		if p.Btrfs() {
			err = p.host.BtrfsSubvolumeSnapshot(ctx, src, dst, false)
		} else {
			err = p.buildTree(dst, func(tmp string) error { return copyTree(ctx, p.host, src, tmp) })
		}
		if err != nil {
			return fmt.Errorf("copy directory volume: %w", err)
		}
	}
	return p.SetDirLimit(ctx, volID, limit, projectID)
}

// buildTree runs build on a temporary sibling of dst (a directory tree or
// a file) and renames it into place, so dst appears complete or not at
// all.
func (p *Pool) buildTree(dst string, build func(tmp string) error) error {
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := build(tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(dst))
}

// CreateBlock makes an empty sparse block volume of size bytes.
func (p *Pool) CreateBlock(ctx context.Context, id string, size int64) error {
	path := p.BlockPath(id)
	if ok, err := exists(path); err != nil || ok {
		return err
	}
	return p.buildTree(path, func(tmp string) error {
		if err := createSparse(tmp, size); err != nil {
			return fmt.Errorf("create block volume: %w", err)
		}
		return nil
	})
}

// ResizeBlock grows a block volume's file to size bytes (never shrinks).
func (p *Pool) ResizeBlock(ctx context.Context, id string, size int64) error {
	path := p.BlockPath(id)
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.Size() >= size {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// BlockSize returns the size of a block volume's file.
func (p *Pool) BlockSize(id string) (int64, error) {
	st, err := os.Stat(p.BlockPath(id))
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// BlockAllocated returns the bytes a block volume's file takes on disk.
func (p *Pool) BlockAllocated(id string) (int64, error) {
	var st unix.Stat_t
	if err := unix.Stat(p.BlockPath(id), &st); err != nil {
		return 0, err
	}
	return st.Blocks * 512, nil
}

// DeleteBlock deletes a block volume's file.
func (p *Pool) DeleteBlock(ctx context.Context, id string) error {
	return removeFile(p.BlockPath(id))
}

// SnapshotBlock copies block volume volID to snapshot snapID (reflink
// where the pool shares extents). The caller freezes a mounted
// filesystem first.
func (p *Pool) SnapshotBlock(ctx context.Context, volID, snapID string) error {
	return p.cloneFile(ctx, p.BlockPath(volID), p.BlockSnapshotPath(snapID), 0)
}

// DeleteBlockSnapshot deletes a snapshot of a block volume.
func (p *Pool) DeleteBlockSnapshot(ctx context.Context, snapID string) error {
	return removeFile(p.BlockSnapshotPath(snapID))
}

// RestoreBlock makes block volume volID of size bytes from snapshot snapID.
func (p *Pool) RestoreBlock(ctx context.Context, snapID, volID string, size int64) error {
	return p.cloneFile(ctx, p.BlockSnapshotPath(snapID), p.BlockPath(volID), size)
}

// CloneBlock makes block volume volID of size bytes as a copy of srcID.
func (p *Pool) CloneBlock(ctx context.Context, srcID, volID string, size int64) error {
	return p.cloneFile(ctx, p.BlockPath(srcID), p.BlockPath(volID), size)
}

func (p *Pool) cloneFile(ctx context.Context, src, dst string, size int64) error {
	if ok, err := exists(dst); err != nil || ok {
		return err
	}
	return p.buildTree(dst, func(tmp string) error {
		if err := p.host.CloneFile(ctx, src, tmp); err != nil {
			return err
		}
		if size > 0 {
			return os.Truncate(tmp, size)
		}
		return nil
	})
}

// SetCompression sets the btrfs compression of a volume's directory or
// file ("" or "none" turns it off for new writes).
func (p *Pool) SetCompression(ctx context.Context, path, algo string) error {
	if !p.Btrfs() {
		return fmt.Errorf("compression: %w", hostops.ErrNotSupported)
	}
	if algo == "none" {
		algo = ""
	}
	return p.host.BtrfsSetProperty(ctx, path, "compression", algo)
}

func removeFile(path string) error {
	err := os.Remove(path)
	if err == nil || errors.Is(err, os.ErrNotExist) {
		if err == nil {
			return atomicfile.SyncDir(filepath.Dir(path))
		}
		return nil
	}
	return err
}
