// Package all lists volplane's controllers in the order the manager
// starts them. Each storage controller of upstream's kube-controller-manager
// that volplane replaces appears here once it is built.
package all

import "volplane/internal/controller"

// Descriptors returns every controller volplane runs.
func Descriptors() []controller.Descriptor {
	return []controller.Descriptor{}
}
