package csidriver

// Placeholder imports that keep the driver's dependencies in go.mod until the
// driver itself imports them.
import (
	_ "github.com/container-storage-interface/spec/lib/go/csi"
	_ "github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	_ "google.golang.org/grpc"
	_ "k8s.io/mount-utils"
)
