// Package protection holds volplane's pvc-protection, pv-protection and
// volumeattributesclass-protection controllers, upstream's controllers of
// the same names: they keep the finalizers that stop a claim from going
// while a pod uses it, a volume from going while it is bound, and a
// VolumeAttributesClass from going while a claim or volume refers to it.
//
//	object  finalizer                      added          removed when the object is deleted and
//	------  -----------------------------  -------------  --------------------------------------------
//	PVC     kubernetes.io/pvc-protection   when missing   no scheduled pod that is not Succeeded or
//	                                                      Failed uses it (by name, or through a
//	                                                      generic ephemeral volume "<pod>-<volume>"
//	                                                      whose claim the pod owns)
//	PV      kubernetes.io/pv-protection    when missing   it is not Bound
//	VAC     kubernetes.io/vac-protection   when missing   no claim names it in spec.volumeAttributesClassName,
//	                                                      status.currentVolumeAttributesClassName or
//	                                                      status.modifyVolumeStatus.targetVolumeAttributesClassName,
//	                                                      and no volume in spec.volumeAttributesClassName
//	                                                      (read from the informers' caches, as upstream)
//
// The API's StorageObjectInUseProtection admission plugin adds both
// finalizers at creation; the controllers add them to objects that lack
// them. Deleting an in-use claim leaves it Terminating until its last pod
// is gone. Before a claim's finalizer goes, the pods of its namespace are
// listed from the API as well, so a pod the informer has not seen yet
// still keeps the claim.
//
// pvc-protection also keeps the Unused condition of bound claims
// (upstream's PersistentVolumeClaimUnusedSinceTime, on by default in
// 1.37): True with reason NoPodsUsingPVC when no pod that is not
// Succeeded or Failed refers to the claim, False with PodUsingPVC
// otherwise; its lastTransitionTime says since when.
//
// The package may call client-go and controller/podindex.
package protection
