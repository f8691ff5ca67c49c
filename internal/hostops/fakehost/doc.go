// Package fakehost is an in-memory hostops.Host for tests of the logic
// above the host: mounts are entries in a table, loop devices are names,
// btrfs subvolumes are plain directories and snapshots are copies. It
// needs no privileges. Err lets a test make any method fail.
package fakehost
