// Package eviction is the node agent's local-storage eviction for
// emptyDir volumes: a pod whose disk emptyDir holds more than its
// sizeLimit is evicted as upstream's eviction manager evicts it (phase
// Failed, reason Evicted, a Warning event, message "Usage of EmptyDir
// volume "<name>" exceeds the limit "<limit>". ").
//
// It is volplane's second line only. Where the emptydir plugin could put
// a volume on a btrfs subvolume with a qgroup (a mount at the pod volume
// directory), the quota stops the writer with EDQUOT before the limit is
// passed, and this package skips the volume. Everywhere else (the root
// dir's ext4 has no quota on this kernel) it measures the directory every
// Interval, as upstream does after the fact: the bytes its files take on
// disk, each inode once, never following a symlink or crossing into
// another filesystem.
//
// It may call: hostops.Host (IsMountPoint) and the pod workers through
// Pods.
package eviction
