// Package gitrepo is the gitRepo volume plugin, "kubernetes.io/git-repo",
// and it refuses every gitRepo volume: upstream locked its
// GitRepoVolumeDriver feature gate off in v1.36, after CVE-2024-10220 and
// CVE-2025-1767 (a clone runs the repository's hooks as root on the
// node). SetUp fails with upstream's own message,
//
//	git-repo volume plugin has been disabled; if necessary, it may be
//	re-enabled by enabling the feature-gate `GitRepoVolumeDriver`
//
// which the volume manager turns into a FailedMount event on the pod, so
// the pod waits in ContainerCreating and nothing is cloned, created or
// mounted. The plugin exists so such a volume is claimed by a plugin
// that says why, rather than reported as one no plugin supports.
// TearDown removes a volume directory left by anything else, never
// through a mount.
//
// volplane's own safe clone (--allow-gitrepo-volumes) is not built yet.
package gitrepo
