// Package ephemeral is volplane's ephemeral-volume controller, upstream's
// of the same name: for every generic ephemeral volume of a pod that is
// not being deleted it creates the claim "<pod>-<volume>" from the
// volume's volumeClaimTemplate (its labels, annotations and spec), owned
// by the pod (controller and blockOwnerDeletion set), so the garbage
// collector deletes it with the pod. A claim of that name that the pod
// does not own is never adopted: the pod gets upstream's FailedBinding
// event "ephemeral volume <name>: PVC <ns>/<claim> was not created for
// pod <ns>/<pod> (pod is not owner)" and its volume never mounts. A
// deleted claim is created again while its pod exists.
//
// The node's volume manager then treats the volume as a claim (see
// package volumemanager/populator).
//
// It may call: the API (pods and claims through informers; claim
// Create), package podindex, component-helpers' ephemeral naming.
package ephemeral
