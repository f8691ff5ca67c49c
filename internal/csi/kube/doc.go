// Package kube holds the conversions between Kubernetes storage objects
// and volplane's CSI client types that several CSI controllers share:
// access modes to CSI capabilities, secret references to secrets, CSI
// topology to PV node affinity, CSINode and Node to topology segments,
// and the names upstream gives CSI objects (VolumeAttachment names,
// unique volume names in Node status, finalizers).
//
// It may call client-go listers and typed clients, and package client's
// types; it holds no state.
package kube
