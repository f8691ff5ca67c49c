package controlplane

import (
	"encoding/pem"
	"fmt"

	"volplane/internal/atomicfile"
)

// writeFile writes data to path atomically (temporary file, fsync,
// rename) with mode 0600: a crash leaves the old file or the new one,
// never a torn one.
func writeFile(path string, data []byte) error {
	if err := atomicfile.Write(path, data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
