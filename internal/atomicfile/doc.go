// Package atomicfile writes files so that a crash leaves the old content
// or the new, never a torn file: a temporary sibling, fsync, rename, and
// an fsync of the directory so the rename itself survives. The control
// plane's PKI and kubeconfigs, the CSI driver's state records and its
// pool description are written with it.
package atomicfile
