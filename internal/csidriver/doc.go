// Package csidriver is the built-in CSI driver local.csi.volplane.io.
package csidriver
