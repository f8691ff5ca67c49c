package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"volplane/internal/atomicfile"
	"volplane/internal/hostops"
	"volplane/internal/logging"
)

// Mode is how the pool enforces the capacity of directory volumes.
type Mode string

const (
	// ModeBtrfs: the pool directory is on btrfs; directory volumes are
	// subvolumes limited by qgroups.
	ModeBtrfs Mode = "btrfs"
	// ModeBtrfsImage: the pool's filesystem offers no quota, so the pool
	// is a sparse btrfs image (pool.img) mounted on <pool>/data.
	ModeBtrfsImage Mode = "btrfs-image"
	// ModeProjectQuota: the pool directory is on XFS or ext4 with
	// project quotas on; directory volumes are project-quota trees.
	ModeProjectQuota Mode = "project-quota"
)

// Filesystem magic numbers from statfs(2).
const (
	magicBtrfs = 0x9123683E
	magicXFS   = 0x58465342
	magicExt4  = 0xEF53
)

// DefaultImageSize is the size of the sparse btrfs image when the pool's
// filesystem enforces no quota.
const DefaultImageSize = 10 << 30

// minImageSize is the smallest image mkfs.btrfs accepts comfortably.
const minImageSize = 256 << 20

// Config configures a pool.
type Config struct {
	// Dir is the pool directory. It holds meta/ (the driver's records),
	// data/ (the volumes) and, in image mode, pool.img.
	Dir string
	// ImageSize is the size of pool.img in image mode: a new image gets
	// it (DefaultImageSize when zero); an existing image smaller than a
	// non-zero ImageSize is grown. Images never shrink.
	ImageSize int64
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Dir == "" {
		return errors.New("pool directory is required")
	}
	if !filepath.IsAbs(c.Dir) {
		return fmt.Errorf("pool directory %q must be absolute", c.Dir)
	}
	if c.ImageSize != 0 && c.ImageSize < minImageSize {
		return fmt.Errorf("pool size %d is below the minimum of %d bytes", c.ImageSize, int64(minImageSize))
	}
	return nil
}

// Pool is where volumes and snapshots live.
type Pool struct {
	dir  string
	data string
	mode Mode
	host hostops.Host
}

// descriptor is <pool>/meta/pool.json: the mode chosen at the first start,
// kept so that a restart never silently switches how volumes are stored.
type descriptor struct {
	Mode Mode `json:"mode"`
}

// Open prepares the pool: on first start it detects what the pool's
// filesystem can enforce and records the choice; later starts reuse it.
// In image mode it creates, grows and mounts the image as needed.
func Open(ctx context.Context, cfg Config, host hostops.Host) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Pool{dir: cfg.Dir, data: filepath.Join(cfg.Dir, "data"), host: host}
	if err := os.MkdirAll(p.MetaDir(), 0o700); err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	descPath := filepath.Join(p.MetaDir(), "pool.json")
	var desc descriptor
	if b, err := os.ReadFile(descPath); err == nil {
		if err := json.Unmarshal(b, &desc); err != nil {
			return nil, fmt.Errorf("pool descriptor %s is damaged: %w", descPath, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if desc.Mode == "" {
		mode, err := p.detect(ctx)
		if err != nil {
			return nil, err
		}
		desc.Mode = mode
		b, _ := json.Marshal(desc)
		if err := atomicfile.Write(descPath, b); err != nil {
			return nil, err
		}
	}
	p.mode = desc.Mode
	logging.FromContext(ctx).Info("opening pool", "dir", p.dir, "mode", p.mode)

	switch p.mode {
	case ModeBtrfsImage:
		if err := p.mountImage(ctx, cfg.ImageSize); err != nil {
			return nil, err
		}
	case ModeBtrfs:
		if err := os.MkdirAll(p.data, 0o755); err != nil {
			return nil, err
		}
	case ModeProjectQuota:
		if err := os.MkdirAll(p.data, 0o755); err != nil {
			return nil, err
		}
		ok, err := host.ProjectQuotaSupported(ctx, p.data)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("pool %s was created with project quotas, which the filesystem no longer enforces", p.dir)
		}
	default:
		return nil, fmt.Errorf("pool %s has unknown mode %q", p.dir, p.mode)
	}
	if p.mode != ModeProjectQuota {
		if err := host.BtrfsQuotaEnable(ctx, p.data); err != nil {
			return nil, fmt.Errorf("enable btrfs quota on %s: %w", p.data, err)
		}
	}
	for _, sub := range []string{"volumes", "blocks", "snapshots"} {
		dir := filepath.Join(p.data, sub)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if err := removeTempFiles(dir); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// detect chooses the mode for a new pool: btrfs qgroups when the pool is
// on btrfs, project quotas when XFS/ext4 enforce them, else an image.
func (p *Pool) detect(ctx context.Context) (Mode, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(p.dir, &st); err != nil {
		return "", fmt.Errorf("statfs %s: %w", p.dir, err)
	}
	log := logging.FromContext(ctx)
	switch uint32(st.Type) {
	case magicBtrfs:
		return ModeBtrfs, nil
	case magicXFS, magicExt4:
		ok, err := p.host.ProjectQuotaSupported(ctx, p.dir)
		if err != nil {
			return "", err
		}
		if ok {
			return ModeProjectQuota, nil
		}
		log.Info("pool filesystem enforces no project quota; using a loop-backed btrfs image", "dir", p.dir)
	default:
		log.Info("pool filesystem offers no quota; using a loop-backed btrfs image", "dir", p.dir, "fsMagic", fmt.Sprintf("%#x", st.Type))
	}
	return ModeBtrfsImage, nil
}

// ImagePath is the sparse btrfs image of an image-mode pool.
func (p *Pool) ImagePath() string { return filepath.Join(p.dir, "pool.img") }

func (p *Pool) mountImage(ctx context.Context, size int64) error {
	if err := os.MkdirAll(p.data, 0o755); err != nil {
		return err
	}
	img := p.ImagePath()
	mounted, err := p.host.IsMountPoint(p.data)
	if err != nil {
		return err
	}
	if _, err := os.Stat(img); errors.Is(err, os.ErrNotExist) {
		if mounted {
			return fmt.Errorf("%s is mounted but the pool image %s is missing", p.data, img)
		}
		tmp := img + ".tmp"
		_ = os.Remove(tmp)
		create := size
		if create == 0 {
			create = DefaultImageSize
		}
		if err := createSparse(tmp, create); err != nil {
			return err
		}
		if err := p.host.Mkfs(ctx, tmp, "btrfs"); err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("format pool image: %w", err)
		}
		if err := os.Rename(tmp, img); err != nil {
			return err
		}
		if err := atomicfile.SyncDir(p.dir); err != nil {
			return err
		}
	}
	dev, err := p.host.LoopAttach(ctx, img)
	if err != nil {
		return fmt.Errorf("attach pool image: %w", err)
	}
	if !mounted {
		if err := p.host.Mount(ctx, dev, p.data, "btrfs", []string{"noatime"}); err != nil {
			_ = p.host.LoopDetach(ctx, dev)
			return fmt.Errorf("mount pool image: %w", err)
		}
		// The loop device goes away with the image's mount, as with
		// mount -o loop.
		if err := p.host.LoopAutoclear(ctx, dev); err != nil {
			return err
		}
	}
	st, err := os.Stat(img)
	if err != nil {
		return err
	}
	if size > 0 && st.Size() < size {
		logging.FromContext(ctx).Info("growing pool image", "from", st.Size(), "to", size)
		if err := os.Truncate(img, size); err != nil {
			return err
		}
		if err := p.host.LoopRefreshSize(ctx, dev); err != nil {
			return err
		}
		if err := p.host.GrowFilesystem(ctx, dev, p.data, "btrfs"); err != nil {
			return err
		}
	}
	return nil
}

// Unmount unmounts an image-mode pool and detaches its loop device. The
// driver never does this on its own (staged volumes keep using the pool);
// tests and benchmarks do, after tearing every volume down.
func (p *Pool) Unmount(ctx context.Context) error {
	if p.mode != ModeBtrfsImage {
		return nil
	}
	if err := p.host.Unmount(ctx, p.data); err != nil {
		return err
	}
	return hostops.DetachFile(ctx, p.host, p.ImagePath())
}

// Mode returns how the pool enforces capacity.
func (p *Pool) Mode() Mode { return p.mode }

// Dir returns the pool directory.
func (p *Pool) Dir() string { return p.dir }

// DataDir returns the directory that holds volumes and snapshots.
func (p *Pool) DataDir() string { return p.data }

// MetaDir returns the directory for the driver's records.
func (p *Pool) MetaDir() string { return filepath.Join(p.dir, "meta") }

// Btrfs reports whether volumes live on btrfs (qgroups, subvolume
// snapshots, properties).
func (p *Pool) Btrfs() bool { return p.mode != ModeProjectQuota }

// Space returns the size of the pool's filesystem and the bytes free for
// new data.
func (p *Pool) Space() (total, free int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(p.data, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", p.data, err)
	}
	return int64(st.Blocks) * st.Bsize, int64(st.Bavail) * st.Bsize, nil
}

// Healthy checks that the pool's data directory is reachable and, in image
// mode, still mounted.
func (p *Pool) Healthy() error {
	if _, err := os.Stat(filepath.Join(p.data, "volumes")); err != nil {
		return fmt.Errorf("pool data unreachable: %w", err)
	}
	if p.mode == ModeBtrfsImage {
		ok, err := p.host.IsMountPoint(p.data)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("pool image is not mounted on %s", p.data)
		}
	}
	return nil
}

func createSparse(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
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
	if err != nil {
		_ = os.Remove(path)
	}
	return err
}

// removeTempFiles removes what an interrupted create left: every entry
// named .*.tmp (files, directories or subvolumes being built).
func removeTempFiles(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") && strings.HasSuffix(e.Name(), ".tmp") {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
