package controlplane

import (
	"strings"
	_ "unsafe" // go:linkname

	baseversion "k8s.io/component-base/version"

	"volplane/internal/version"
)

// Upstream sets the API server's version with -ldflags -X at build time;
// a plain `go build` of volplane would report v0.0.0-master, which kubectl
// cannot parse. These name the same variables, so that every build
// reports the embedded release, with volplane's build after the '+'.
// (Test binaries carry no module versions, and keep upstream's
// placeholder.)
var (
	//go:linkname gitVersion k8s.io/component-base/version.gitVersion
	gitVersion string
	//go:linkname gitMajor k8s.io/component-base/version.gitMajor
	gitMajor string
	//go:linkname gitMinor k8s.io/component-base/version.gitMinor
	gitMinor string
	//go:linkname gitCommit k8s.io/component-base/version.gitCommit
	gitCommit string
	//go:linkname gitTreeState k8s.io/component-base/version.gitTreeState
	gitTreeState string
)

func init() {
	if !strings.HasPrefix(gitVersion, "v0.0.0") {
		return // set at link time
	}
	k := version.Kubernetes() // v1.37.2
	parts := strings.SplitN(strings.TrimPrefix(k, "v"), ".", 3)
	if len(parts) < 2 {
		return
	}
	gitVersion = k + "+volplane"
	gitMajor, gitMinor = parts[0], parts[1]
	gitCommit, gitTreeState = "", "clean"
	// Get() reads a copy made at init; refresh it (a no-op store of the
	// value just set, which SetDynamicVersion accepts).
	_ = baseversion.SetDynamicVersion(gitVersion)
}
