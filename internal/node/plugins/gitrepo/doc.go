// Package gitrepo is the gitRepo volume plugin, "kubernetes.io/git-repo".
//
// By default it refuses every gitRepo volume, as upstream does since
// v1.36 (its GitRepoVolumeDriver feature gate locked off, after
// CVE-2024-10220 and CVE-2025-1767: a clone could run the repository's
// hooks as root on the node, or read the node's own repositories). SetUp
// fails with upstream's message,
//
//	git-repo volume plugin has been disabled; if necessary, it may be
//	re-enabled by enabling the feature-gate `GitRepoVolumeDriver`
//
// which the volume manager turns into a FailedMount event, so the pod
// waits in ContainerCreating and nothing is cloned, created or mounted.
//
// With Config.Allow (the node's --allow-gitrepo-volumes) it clones
// instead, upstream's way with the holes closed:
//
//   - the repository into <root>/pods/<uid>/volumes/kubernetes.io~git-repo/<name>
//     (or its `directory`, which must be one plain name; "." is the
//     volume itself; ".." and separators are refused), then `git
//     checkout <revision>` and `git reset --hard` when a revision is
//     given; arguments starting with "-" are refused, as upstream;
//   - git runs with no system or global configuration, HOME elsewhere,
//     no terminal prompt, no askpass, no ssh, hooks pointed at /dev/null,
//     no fsmonitor, no submodules, embedded bare repositories ignored
//     (safe.bareRepository=explicit), and only the https, http and git
//     transports (GIT_ALLOW_PROTOCOL: never file or ext);
//   - git runs as the node agent, through exec.CommandContext; a failure
//     is a hostops.ExecError with git's exit code and stderr, wrapped in
//     upstream's "failed to exec 'git ...'" message (a revision that does
//     not exist fails at the checkout);
//   - a marker <root>/pods/<uid>/plugins/kubernetes.io~git-repo/<name>/ready
//     makes a later SetUp a no-op, as upstream; until it is written, each
//     SetUp starts again from an empty directory (never removing through
//     a mount);
//   - the pod's fsGroup is applied as for a writable volume.
//
// TearDown removes the directory (never through a mount) and the marker.
package gitrepo
