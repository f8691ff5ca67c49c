package hostops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DetachFile detaches the loop device backed by file, if one is.
func DetachFile(ctx context.Context, h Host, file string) error {
	dev, err := h.LoopFind(file)
	if err != nil || dev == "" {
		return err
	}
	return h.LoopDetach(ctx, dev)
}

// LoopAttach implements Host with the loop driver's ioctls: a free device
// from /dev/loop-control, then LOOP_CONFIGURE with the file descriptor.
// It does not set autoclear: a raw block device bind-mounted into a pod
// holds no reference on it, and the device would vanish under the pod.
func (h *Real) LoopAttach(ctx context.Context, file string) (string, error) {
	if dev, err := h.LoopFind(file); err != nil || dev != "" {
		return dev, err
	}
	backing, err := os.OpenFile(file, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open loop backing file: %w", err)
	}
	defer backing.Close()

	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open loop control: %w", err)
	}
	defer ctl.Close()

	// Another process may take the free device between GET_FREE and
	// CONFIGURE; the kernel then answers EBUSY and we ask again.
	for attempt := 0; attempt < 20; attempt++ {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", fmt.Errorf("find free loop device: %w", err)
		}
		dev := fmt.Sprintf("/dev/loop%d", n)
		if err := configureLoop(dev, backing); err != nil {
			if errors.Is(err, unix.EBUSY) {
				time.Sleep(time.Duration(attempt+1) * time.Millisecond)
				continue
			}
			return "", err
		}
		return dev, nil
	}
	return "", fmt.Errorf("attach %s: no free loop device after retries: %w", file, unix.EBUSY)
}

func configureLoop(dev string, backing *os.File) error {
	f, err := openLoopDevice(dev)
	if err != nil {
		return err
	}
	defer f.Close()
	cfg := unix.LoopConfig{Fd: uint32(backing.Fd())}
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], backing.Name())
	err = unix.IoctlLoopConfigure(int(f.Fd()), &cfg)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) {
		// Kernels before 5.8 have no LOOP_CONFIGURE.
		if err = unix.IoctlSetInt(int(f.Fd()), unix.LOOP_SET_FD, int(backing.Fd())); err == nil {
			err = unix.IoctlLoopSetStatus64(int(f.Fd()), &cfg.Info)
			if err != nil {
				_ = unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("attach %s to %s: %w", backing.Name(), dev, err)
	}
	return nil
}

// openLoopDevice opens a loop device node, creating it when /dev is not
// a devtmpfs that does so by itself.
func openLoopDevice(dev string) (*os.File, error) {
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		var n int
		if _, serr := fmt.Sscanf(filepath.Base(dev), "loop%d", &n); serr == nil {
			_ = unix.Mknod(dev, unix.S_IFBLK|0o660, int(unix.Mkdev(7, uint32(n))))
			f, err = os.OpenFile(dev, os.O_RDWR|unix.O_CLOEXEC, 0)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open loop device: %w", err)
	}
	return f, nil
}

// LoopFind implements Host. It compares the device and inode of file with
// what each attached loop device reports, so a file found under another
// path (a bind mount, a remounted pool) is still recognised.
func (h *Real) LoopFind(file string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil {
		return "", &os.PathError{Op: "stat", Path: file, Err: err}
	}
	entries, err := os.ReadDir("/sys/block")
	if err != nil {
		return "", fmt.Errorf("list block devices: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "loop") {
			continue
		}
		if _, err := os.Stat(filepath.Join("/sys/block", name, "loop", "backing_file")); err != nil {
			continue // not attached
		}
		dev := "/dev/" + name
		f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		info, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
		f.Close()
		if err != nil {
			continue // detached meanwhile
		}
		if info.Inode == st.Ino && info.Device == st.Dev {
			return dev, nil
		}
	}
	return "", nil
}

// LoopAutoclear implements Host: LO_FLAGS_AUTOCLEAR is one of the flags
// LOOP_SET_STATUS64 may change on an attached device.
func (h *Real) LoopAutoclear(ctx context.Context, dev string) error {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer f.Close()
	info, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
	if err != nil {
		return fmt.Errorf("status of %s: %w", dev, err)
	}
	info.Flags |= unix.LO_FLAGS_AUTOCLEAR
	if err := unix.IoctlLoopSetStatus64(int(f.Fd()), info); err != nil {
		return fmt.Errorf("set autoclear on %s: %w", dev, err)
	}
	return nil
}

// LoopDetach implements Host.
func (h *Real) LoopDetach(ctx context.Context, dev string) error {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer f.Close()
	err = unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0)
	if err == nil || errors.Is(err, unix.ENXIO) {
		return nil
	}
	return fmt.Errorf("detach %s: %w", dev, err)
}

// LoopRefreshSize implements Host.
func (h *Real) LoopRefreshSize(ctx context.Context, dev string) error {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.LOOP_SET_CAPACITY, 0); err != nil {
		return fmt.Errorf("refresh size of %s: %w", dev, err)
	}
	return nil
}

// DeviceSize implements Host.
func (h *Real) DeviceSize(dev string) (int64, error) {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", dev, err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dev, err)
	}
	return size, nil
}
