package controlplane

import (
	"strings"
	"testing"
)

func TestDataDirLockIsExclusive(t *testing.T) {
	dir := t.TempDir()
	l, err := LockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockDataDir(dir); err == nil || !strings.Contains(err.Error(), "in use by another volplane") {
		t.Fatalf("second lock: %v", err)
	}
	l.Release()
	l2, err := LockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Release()
}
