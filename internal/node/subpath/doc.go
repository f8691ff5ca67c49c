// Package subpath mounts one path inside a volume somewhere else without
// ever letting that path lead out of the volume: the safe subPath of the
// kubelet (CVE-2017-1002101, CVE-2021-25741) done with file descriptors.
//
// Prepare refuses absolute subPaths and ".." components with upstream's
// messages, then resolves the subPath with openat2(2) from a descriptor
// of the volume's root, with RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS: a
// symlink inside the volume may point elsewhere inside it, but any path
// that would leave the volume (an absolute symlink, "..", /proc magic
// links) fails with EXDEV. Missing directories are made one at a time
// with mkdirat(2) on a descriptor obtained the same way, so a component
// replaced by a symlink between two steps cannot redirect the creation.
// What was opened is bind-mounted through /proc/self/fd/N, so the mount
// is of the object resolved, never of a path resolved again: a symlink
// swapped in after resolution changes nothing.
//
// Targets live at <root>/pods/<uid>/volume-subpaths/<volume>/<container>/<index>
// (a directory, or an empty file for a file subPath). Prepare is
// idempotent: a target already mounted with the same object stays.
// Clean unmounts and removes a volume's targets; it removes only empty
// placeholders with remove(2), never a tree, so nothing is deleted
// through a mount.
//
// It may call: hostops.Host (BindMount, Unmount, IsMountPoint) and
// golang.org/x/sys/unix.
package subpath
