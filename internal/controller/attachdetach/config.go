package attachdetach

import (
	"errors"
	"time"

	"github.com/spf13/pflag"
)

// Config configures the attach/detach controller.
type Config struct {
	// ReconcilePeriod is how often the reconciler runs without an event
	// (for the unmount timeout); events run it at once.
	ReconcilePeriod time.Duration
	// MaxWaitForUnmountDuration is how long a volume no pod on an
	// unhealthy node needs may stay attached while the node still
	// reports it in use; then it is detached anyway. Upstream's is 6
	// minutes.
	MaxWaitForUnmountDuration time.Duration
	// DisableForceDetachOnTimeout never detaches a volume the node
	// reports in use because of the timeout (upstream's
	// --disable-force-detach-on-timeout); the out-of-service taint still
	// does.
	DisableForceDetachOnTimeout bool
}

// DefaultConfig returns the defaults Validate fills in.
func DefaultConfig() Config {
	c := Config{}
	_ = c.Validate()
	return c
}

// Validate fills in defaults and checks c.
func (c *Config) Validate() error {
	if c.ReconcilePeriod == 0 {
		c.ReconcilePeriod = time.Second
	}
	if c.MaxWaitForUnmountDuration == 0 {
		c.MaxWaitForUnmountDuration = 6 * time.Minute
	}
	if c.ReconcilePeriod < 0 || c.MaxWaitForUnmountDuration < 0 {
		return errors.New("attachdetach config: negative duration")
	}
	return nil
}

// AddFlags binds the flags users tune to c, upstream's names where it has
// them.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	fs.BoolVar(&c.DisableForceDetachOnTimeout, "disable-force-detach-on-timeout", false,
		"Never detach a volume an unhealthy node still reports in use because max-wait-for-unmount-duration passed.")
	fs.DurationVar(&c.MaxWaitForUnmountDuration, "max-wait-for-unmount-duration", d.MaxWaitForUnmountDuration,
		"How long a volume no pod needs stays attached to an unhealthy node that still reports it in use before it is detached anyway.")
}
