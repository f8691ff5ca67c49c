package hostops

import (
	"context"
	"strings"
)

// MountCommand implements Host.
func (h *Real) MountCommand(ctx context.Context, source, target, fstype string, options []string) error {
	args := []string{"-t", fstype}
	if len(options) > 0 {
		args = append(args, "-o", strings.Join(options, ","))
	}
	args = append(args, source, target)
	_, err := run(ctx, "mount", args...)
	return err
}
