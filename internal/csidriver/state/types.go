package state

import (
	"maps"
	"time"
)

// Kind is what backs a volume.
type Kind string

const (
	// KindDir is a directory with an enforced capacity (a btrfs subvolume
	// with a qgroup limit, or a project-quota directory).
	KindDir Kind = "dir"
	// KindBlock is a sparse file attached to a loop device, used raw or
	// formatted with ext4/xfs.
	KindBlock Kind = "block"
)

// Phase tracks an object through the steps that create and delete it, so
// a driver restarted in the middle of either can finish or undo it.
type Phase string

const (
	// Creating: the record is written, the backing object may be partly
	// made. A CreateVolume/CreateSnapshot retry with the same name resumes.
	Creating Phase = "Creating"
	// Ready: the backing object exists and is complete.
	Ready Phase = "Ready"
	// Deleting: the user asked for deletion; the backing object may be
	// partly removed. The driver finishes the deletion on start.
	Deleting Phase = "Deleting"
)

// Volume is one volume of the pool with what the controller and the node
// know about it.
type Volume struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	Kind          Kind      `json:"kind"`
	Phase         Phase     `json:"phase"`
	CapacityBytes int64     `json:"capacityBytes"`
	CreatedAt     time.Time `json:"createdAt"`
	// FSType is the filesystem asked for a block volume used in
	// Filesystem mode ("" means the default, ext4).
	FSType string `json:"fsType,omitempty"`
	// Formatted is the filesystem the node found or made on a block
	// volume, "" while the volume was never staged as a filesystem.
	Formatted string `json:"formatted,omitempty"`
	// FilesystemBytes is the device size the filesystem was last
	// formatted or grown to.
	FilesystemBytes int64 `json:"filesystemBytes,omitempty"`
	// SourceSnapshotID or SourceVolumeID is the content source.
	SourceSnapshotID string `json:"sourceSnapshotID,omitempty"`
	SourceVolumeID   string `json:"sourceVolumeID,omitempty"`
	// Parameters are the CreateVolume parameters, MutableParameters the
	// ones ControllerModifyVolume may change.
	Parameters        map[string]string `json:"parameters,omitempty"`
	MutableParameters map[string]string `json:"mutableParameters,omitempty"`
	// ProjectID is the quota project of a directory volume on a
	// project-quota pool.
	ProjectID uint32 `json:"projectID,omitempty"`

	// Published maps node IDs to the controller publication.
	Published map[string]Publication `json:"published,omitempty"`
	// Staged is set while the volume is staged on this node.
	Staged *Staging `json:"staged,omitempty"`
	// Targets maps the node-published target paths to how they were
	// published.
	Targets map[string]Target `json:"targets,omitempty"`
}

// Publication is one ControllerPublishVolume.
type Publication struct {
	ReadOnly   bool  `json:"readOnly,omitempty"`
	AccessMode int32 `json:"accessMode"`
	Block      bool  `json:"block,omitempty"`
}

// Staging is the NodeStageVolume of a volume.
type Staging struct {
	Path string `json:"path"`
	// Device is the loop device of a block volume.
	Device     string   `json:"device,omitempty"`
	Block      bool     `json:"block,omitempty"`
	ReadOnly   bool     `json:"readOnly,omitempty"`
	AccessMode int32    `json:"accessMode"`
	MountFlags []string `json:"mountFlags,omitempty"`
}

// Target is one NodePublishVolume.
type Target struct {
	ReadOnly   bool     `json:"readOnly,omitempty"`
	Block      bool     `json:"block,omitempty"`
	AccessMode int32    `json:"accessMode"`
	MountFlags []string `json:"mountFlags,omitempty"`
	// Created says the driver made the target directory or file, so
	// unpublishing removes it; a target the CO made is left to it.
	Created bool `json:"created,omitempty"`
}

// Snapshot is a point-in-time copy of a volume that lives on after the
// volume is deleted.
type Snapshot struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	SourceVolumeID string    `json:"sourceVolumeID"`
	Kind           Kind      `json:"kind"`
	Phase          Phase     `json:"phase"`
	SizeBytes      int64     `json:"sizeBytes"`
	CreatedAt      time.Time `json:"createdAt"`
	// FSType and Formatted are copied from the source volume so that a
	// restore knows what it holds.
	FSType          string `json:"fsType,omitempty"`
	Formatted       string `json:"formatted,omitempty"`
	FilesystemBytes int64  `json:"filesystemBytes,omitempty"`
	// GroupID is set for the members of a volume group snapshot.
	GroupID string `json:"groupID,omitempty"`
}

// Group is a volume group snapshot: snapshots of several volumes taken at
// one point in time.
type Group struct {
	ID              string    `json:"id"`
	Name            string    `json:"name"`
	Phase           Phase     `json:"phase"`
	SourceVolumeIDs []string  `json:"sourceVolumeIDs"`
	SnapshotIDs     []string  `json:"snapshotIDs"`
	CreatedAt       time.Time `json:"createdAt"`
}

func cloneTarget(t Target) Target {
	t.MountFlags = append([]string(nil), t.MountFlags...)
	return t
}

// Clone returns a deep copy of v.
func (v Volume) Clone() Volume {
	v.Parameters = maps.Clone(v.Parameters)
	v.MutableParameters = maps.Clone(v.MutableParameters)
	v.Published = maps.Clone(v.Published)
	if v.Staged != nil {
		s := *v.Staged
		s.MountFlags = append([]string(nil), s.MountFlags...)
		v.Staged = &s
	}
	if v.Targets != nil {
		targets := make(map[string]Target, len(v.Targets))
		for k, t := range v.Targets {
			targets[k] = cloneTarget(t)
		}
		v.Targets = targets
	}
	return v
}

// Clone returns a deep copy of s.
func (s Snapshot) Clone() Snapshot { return s }

// Clone returns a deep copy of g.
func (g Group) Clone() Group {
	g.SourceVolumeIDs = append([]string(nil), g.SourceVolumeIDs...)
	g.SnapshotIDs = append([]string(nil), g.SnapshotIDs...)
	return g
}
