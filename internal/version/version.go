// Package version holds volplane's version, set at link time with
// -ldflags "-X volplane/internal/version.Version=...".
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is volplane's release; "dev" for builds without -X.
var Version = "dev"

// Kubernetes is the upstream release whose API volplane embeds.
func Kubernetes() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "k8s.io/kubernetes" {
				return m.Version
			}
		}
	}
	return "unknown"
}

// String is the one-line version report of `volplane version`.
func String() string {
	return fmt.Sprintf("volplane %s (kubernetes %s, %s, %s/%s)", Version, Kubernetes(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
