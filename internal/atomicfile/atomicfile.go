package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data, mode 0600. The temporary file is named
// .<name>.*.tmp beside it and is removed when the write fails.
func Write(path string, data []byte) error {
	if err := WriteNoDirSync(path, data); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// WriteNoDirSync is Write without the fsync of the directory: after a
// crash path holds the old data or the new, whole, but which one is
// known only once the caller has synced the directory (SyncDir), as one
// who replaces many files in a directory does once for all of them.
func WriteNoDirSync(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// SyncDir makes the entries of dir (a create, a rename, a removal)
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
