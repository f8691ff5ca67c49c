// Package all lists volplane's controllers in the order the manager
// starts them. Each storage controller of upstream's kube-controller-manager
// that volplane replaces appears here once it is built.
package all

import (
	"github.com/spf13/pflag"

	"volplane/internal/controller"
	"volplane/internal/controller/attachdetach"
	"volplane/internal/controller/binder"
	"volplane/internal/controller/csrapprover"
	"volplane/internal/controller/ephemeral"
	"volplane/internal/controller/protection"
)

// Options configure the controllers; commands fill them from flags.
type Options struct {
	Binder       binder.Config
	Protection   protection.Config
	AttachDetach attachdetach.Config
	Ephemeral    ephemeral.Config
}

// DefaultOptions returns the options used without flags.
func DefaultOptions() Options {
	return Options{Binder: binder.DefaultConfig(), AttachDetach: attachdetach.DefaultConfig()}
}

// AddFlags binds every controller's flags to o.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	o.Binder.AddFlags(fs)
	o.Protection.AddFlags(fs)
	o.AttachDetach.AddFlags(fs)
}

// Descriptors returns every controller volplane runs, with default
// options.
func Descriptors() []controller.Descriptor {
	return DescriptorsFor(DefaultOptions())
}

// DescriptorsFor returns every controller volplane runs, configured by o.
func DescriptorsFor(o Options) []controller.Descriptor {
	return []controller.Descriptor{
		binder.Descriptor(o.Binder),
		protection.PVCDescriptor(o.Protection),
		protection.PVDescriptor(o.Protection),
		protection.VACDescriptor(o.Protection),
		attachdetach.Descriptor(o.AttachDetach),
		ephemeral.Descriptor(o.Ephemeral),
		csrapprover.Descriptor(),
	}
}
