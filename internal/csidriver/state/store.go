package state

import (
	"errors"
)

// ErrNotFound is returned (wrapped) by Get and ByName when no record
// matches.
var ErrNotFound = errors.New("not found")

// ErrAlreadyExists is returned (wrapped) by Put when another record of the
// same kind already holds the name.
var ErrAlreadyExists = errors.New("name already used by another record")

// Store is the driver's persistent memory of volumes, snapshots and group
// snapshots. The driver keeps nothing that matters only in memory: every
// change is written here before the RPC that made it answers.
//
// Contracts shared by every method:
//
//   - Get* and *ByName return an error wrapping ErrNotFound when no record
//     matches, never a zero record with a nil error.
//   - Put* creates or replaces the record with that ID. It returns only once
//     the record is durable (FileStore: its entry in the journal is
//     written and synced). A crash at any point leaves either the old or
//     the new record, never a torn one.
//   - Put* returns an error wrapping ErrAlreadyExists when a record with
//     another ID already holds the same name; names are unique per kind and
//     IDs must be non-empty file-name-safe strings ([A-Za-z0-9._-], not
//     starting with a dot).
//   - Delete* is idempotent: deleting an ID that has no record returns nil.
//   - List* return records sorted by ID.
//   - Every record returned is a deep copy: changing it changes nothing until
//     it is passed to Put. VisitVolumes is the exception, for reads that
//     look at every volume on a hot path (a CreateVolume's free space, a
//     publish's volume count): cloning every record there made each call
//     O(volumes) in allocations. Its fn sees the records in place, in no
//     order, under the store's read lock: it must not keep or change a
//     record, nor call the store.
//
// All methods are safe for concurrent use. The store does not serialise
// read-modify-write sequences of its callers; the driver holds a per-object
// lock around those.
type Store interface {
	GetVolume(id string) (Volume, error)
	VolumeByName(name string) (Volume, error)
	ListVolumes() []Volume
	VisitVolumes(fn func(*Volume))
	PutVolume(v Volume) error
	DeleteVolume(id string) error

	GetSnapshot(id string) (Snapshot, error)
	SnapshotByName(name string) (Snapshot, error)
	ListSnapshots() []Snapshot
	PutSnapshot(s Snapshot) error
	DeleteSnapshot(id string) error

	GetGroup(id string) (Group, error)
	GroupByName(name string) (Group, error)
	ListGroups() []Group
	PutGroup(g Group) error
	DeleteGroup(id string) error

	// DiskUsage returns the bytes the records take on disk.
	DiskUsage() (int64, error)
	// Fold brings the at-rest form of every record up to date with the
	// changes so far (FileStore: the record files, from its journal), for
	// a clean stop to leave the records readable one file each.
	Fold() error
}
