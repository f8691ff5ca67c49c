// Package volumezone is volplane's zone plugin for the embedded
// kube-scheduler, registered as "VolplaneVolumeZone" at the extension
// points upstream's VolumeZone occupies (PreFilter, Filter; turned off):
// a pod whose bound PersistentVolumes carry zone or region labels
// (topology.kubernetes.io/zone and /region, and the deprecated
// failure-domain.beta.kubernetes.io ones) only goes to a node with the
// same label and one of the volume's values (a label value may list
// several zones, joined by "__"). A node with none of these labels fits
// any volume (a one-zone cluster). Unbound claims of WaitForFirstConsumer
// classes are the binding plugin's; other unbound claims leave the pod
// unschedulable ("PersistentVolume had no name"). The reason is
// upstream's: "node(s) had no available volume zone".
//
// topology.go holds the pure functions, with table tests. The package
// may call client-go, component-helpers and the scheduler framework
// interfaces; never upstream's volume plugins or storage code.
package volumezone
