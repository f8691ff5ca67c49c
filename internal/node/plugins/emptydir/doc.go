// Package emptydir is the kubernetes.io/empty-dir volume plugin: a
// directory that lives as long as its pod, at
// <root>/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>, mode 0777 as
// upstream, with the pod's fsGroup applied.
//
// Media:
//
//   - "" (disk): a directory on the root dir's filesystem. With a
//     sizeLimit and Config.BtrfsDir set (a directory on a btrfs
//     filesystem, such as the built-in pool's), the volume is a btrfs
//     subvolume <BtrfsDir>/<pod uid>-<name> with a qgroup limit of
//     sizeLimit, bind-mounted onto the pod directory: a writer gets
//     EDQUOT at the limit instead of upstream's eviction after the fact.
//     Without BtrfsDir the limit is not enforced by this plugin (the
//     root dir's ext4 has no quota on this kernel): package eviction
//     evicts the pod after the fact, as upstream does.
//   - Memory: a tmpfs (nosuid, nodev) sized by sizeLimit, or by the
//     pod's memory limit (the sum of its containers' limits when every
//     container has one) when that is smaller or sizeLimit is unset.
//   - HugePages*: refused with a clear error; this node has no
//     hugetlbfs.
//
// SetUp and TearDown are idempotent: an existing mount is kept, a
// missing one is not an error. TearDown unmounts, deletes the subvolume
// and removes the directory, refusing while anything else is mounted
// beneath it.
//
// It may call: hostops.Host (Mount, BindMount, Unmount, btrfs
// subvolumes and qgroups) and plugins.SetVolumeOwnership.
package emptydir
