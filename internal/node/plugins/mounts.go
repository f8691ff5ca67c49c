package plugins

import (
	"strings"

	"volplane/internal/hostops"
)

// MountsUnder lists the mount points at or beneath dir, from the mount
// table: what a plugin checks before it removes a directory, so that it
// never deletes through a mount.
func MountsUnder(ops hostops.Host, dir string) ([]string, error) {
	mps, err := ops.Mounts()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range mps {
		if m.Path == dir || strings.HasPrefix(m.Path, dir+"/") {
			out = append(out, m.Path)
		}
	}
	return out, nil
}
