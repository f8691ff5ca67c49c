// Package populator fills the desired state of the world from the pods
// the agent says are bound to this node (volumemanager.PodStates).
//
// For each pod whose containers may still run it resolves every volume a
// container uses (volumeMounts or volumeDevices of init, regular and
// ephemeral containers; other volumes are ignored, as upstream): an
// inline volume is its own spec; a persistentVolumeClaim, or a generic
// ephemeral volume (claim <pod>-<volume>, which must be owned by the pod),
// leads to its claim and the PersistentVolume bound to it, read with Get
// (the Node authorizer allows nothing else) through a cache of
// Config.CacheTTL. Errors are upstream's ("error processing PVC ns/name:
// PVC is not bound", "volume x has volumeMode Block, but is specified in
// volumeMounts", ...); the pod's error is kept in the desired state, and
// WaitForAttachAndMount returns it, as upstream's populator leaves it to
// the kubelet's wait. A pod with errors is processed again at every pass,
// so it starts by itself once its claim is bound; a pod processed
// without error is not processed again until Reprocess.
//
// A pod whose containers are all terminated, or that the agent no longer
// lists, has its volumes removed from the desired state; the reconciler
// then tears them down. Nothing is removed before the agent's pod list
// is synced (Config.PodsSynced), and Ready reports when a full pass over
// a synced list has been made.
//
// It may call: the API (PVC and PV Get only), the plugins' CanSupport
// and VolumeName, and the desired state.
package populator
