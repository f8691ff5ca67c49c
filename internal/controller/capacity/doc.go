// Package capacity publishes storage capacity for one CSI driver: one
// CSIStorageCapacity object per StorageClass of the driver and topology
// segment of the nodes that run it (from their CSINode topology keys and
// labels), with GetCapacity's available bytes and maximumVolumeSize, as
// upstream's external-provisioner does with --enable-capacity. The
// scheduler reads them for drivers whose CSIDriver says storageCapacity.
//
// Objects live in Config.Namespace (kube-system), carry upstream's labels
// csi.storage.k8s.io/drivername and csi.storage.k8s.io/managed-by
// (volplane-csi-controller), and are owned by the driver's CSIDriver
// object, so the garbage collector removes them with the driver. Without
// a CSIDriver object nothing is published. Names are fixed per driver,
// class and segment (upstream generates them), so a pass that does not
// yet see its own earlier create makes no duplicate.
//
// They are kept current: a pass runs at every change of classes,
// CSINodes, the CSIDriver, and when a volume of the driver is created or
// deleted (at most one pass per MinInterval, so a burst of volumes is
// not a pass each), and every PollInterval; objects of classes or segments that
// are gone are deleted. A driver without GET_CAPACITY or without
// topology publishes nothing.
//
// The package calls client-go, the CSI client and internal/csi/kube.
package capacity
