package controlplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// lockFile is held (flock, exclusive) for as long as a volplane process
// uses the data dir; it holds that process's pid for the error message.
const lockFile = "volplane.lock"

// DirLock is an exclusive lock on a data dir.
type DirLock struct{ f *os.File }

// LockDataDir creates dir if needed and takes its lock, failing at once
// if the dir cannot be written or another process holds it.
func LockDataDir(dir string) (*DirLock, error) {
	unwritable := func(err error) error {
		return fmt.Errorf("data dir %s cannot be written: %w", dir, errors.Unwrap(err))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, unwritable(err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, unwritable(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		pid, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another volplane (pid %s)", dir, strings.TrimSpace(string(pid)))
		}
		return nil, fmt.Errorf("data dir %s: lock: %w", dir, err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, unwritable(err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, unwritable(err)
	}
	// A read-only data dir takes the lock on an existing file but cannot
	// hold etcd or PKI: probe it now rather than fail half-way.
	probe, err := os.CreateTemp(dir, ".probe-")
	if err != nil {
		f.Close()
		return nil, unwritable(err)
	}
	probe.Close()
	os.Remove(probe.Name())
	return &DirLock{f: f}, nil
}

// Release drops the lock.
func (l *DirLock) Release() {
	if l != nil && l.f != nil {
		_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
		l.f.Close()
	}
}
