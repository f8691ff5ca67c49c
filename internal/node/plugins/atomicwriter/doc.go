// Package atomicwriter writes the content of configMap, secret,
// downwardAPI and projected volumes in upstream's on-disk layout, so a
// reader in the pod always sees one whole version of the payload:
//
//	<dir>/..2026_11_27_17_45_00.123456789/   the files of one version
//	<dir>/..data -> ..2026_11_27_17_45_00.123456789
//	<dir>/key    -> ..data/key               one symlink per top-level name
//	<dir>/conf   -> ..data/conf              (nested paths: the top directory)
//
// Write creates a new timestamped directory, writes every file in it with
// its mode (the item's mode or the volume's defaultMode) and owner (the
// item's user, the pod's fsGroup as group), points a temporary symlink
// ..data_tmp at it and renames that over ..data, which is atomic. Then it
// adds the per-key symlinks that are missing, removes those of keys that
// are gone, and removes the previous directory. A payload equal to what is
// on disk (same paths, bytes, modes and owners) changes nothing at all.
// Leftovers of a write interrupted by a crash (a ..data_tmp, a timestamped
// directory ..data does not point to) are removed by the next Write.
//
// With an fsGroup, ownership follows upstream's SetVolumeOwnership for a
// read-only volume: every file and directory gets the group, files gain
// g+r (0440), directories g+rx and setgid, the volume directory as well.
//
// Everything below the volume directory is reached through the
// directory's file descriptor (openat, mkdirat, symlinkat, renameat,
// unlinkat, fchownat with AT_SYMLINK_NOFOLLOW), and every open refuses to
// follow a symlink: a symlink planted in the volume never leads a write,
// chown or removal outside it. Paths are checked as upstream does
// (relative, no "..", not starting with "..", names of at most 255
// bytes, paths of at most 4096).
//
// The package does file work only; mounting the tmpfs a secret lives on
// is the plugin's (package apivolume).
package atomicwriter
