package binder

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"
)

// Config configures the PV controller. The zero value plus Validate gives
// upstream's behaviour with volplane's defaults.
type Config struct {
	// Workers is the number of goroutines syncing claims, and as many sync
	// volumes. 0 takes the controller manager's default.
	Workers int
	// BindWorkers execute bind decisions in parallel: the four writes of
	// a bind are sequential, so throughput comes from many binds at once
	// (128: 1,000 claims pre-bound by the scheduler in a burst are bound
	// about twice as fast as with 32, bench scheduler).
	BindWorkers int
	// SettleWindow: unbound claims (and newly available volumes) are
	// matched as a batch, largest request first, once none has arrived
	// for this long. It is the latency added to a lone claim. 0 matches
	// whatever is pending at once; DefaultConfig has 100ms.
	SettleWindow time.Duration
	// MaxSettleDelay caps how long a claim waits for a burst to settle.
	MaxSettleDelay time.Duration
	// BurstGap: a claim whose only fit is a volume larger than it asked
	// is held until no claim or volume of its group has arrived for the
	// group's burst gap, unless it arrived alone (its group quiet for the
	// burst gap before and since). The burst gap is BurstGap times the
	// bit length of the burst's arrivals so far, so a long burst on a
	// loaded machine is not cut by one stall (see batch.go). Bursts are
	// thus matched as a whole: no claim stranded, none on a larger volume
	// than its exact fit. Exact fits bind after the settle window.
	BurstGap time.Duration
	// MaxBurstHold caps how long a claim is held by BurstGap.
	MaxBurstHold time.Duration
	// ResyncPeriod is how often every claim and volume is synced again
	// (upstream's --pvclaimbinder-sync-period).
	ResyncPeriod time.Duration
	// DisableDynamicProvisioning stops the controller from provisioning or
	// asking external provisioners.
	DisableDynamicProvisioning bool
	// Provisioners are the in-process provisioners, by StorageClass
	// provisioner name. Classes naming another provisioner are left to an
	// external one (the claim gets the storage-provisioner annotations).
	Provisioners []Provisioner
	// HostPathProvisionerDir, when set, adds the kubernetes.io/host-path
	// provisioner creating directories under it (upstream's
	// --enable-hostpath-provisioner, for tests only).
	HostPathProvisionerDir string
	// Recycler scrubs volumes with reclaim policy Recycle; nil uses a
	// recycler pod, as upstream does.
	Recycler Recycler
	// RecyclerPod configures the default recycler.
	RecyclerPod RecyclerPodConfig
	// OperationBackoff and OperationMaxBackoff bound the exponential
	// backoff of failed provision, delete and recycle operations.
	OperationBackoff, OperationMaxBackoff time.Duration
	// ProvisionRetries is how many times a provisioned PV object is
	// created before the new backend volume is deleted again, and
	// ProvisionRetryInterval the wait between tries.
	ProvisionRetries       int
	ProvisionRetryInterval time.Duration
}

// DefaultConfig returns the defaults Validate fills in.
func DefaultConfig() Config {
	c := Config{SettleWindow: 100 * time.Millisecond}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.BindWorkers == 0 {
		c.BindWorkers = 128
	}
	if c.MaxSettleDelay == 0 {
		c.MaxSettleDelay = time.Second
	}
	if c.BurstGap == 0 {
		c.BurstGap = 3 * time.Second
	}
	if c.MaxBurstHold == 0 {
		c.MaxBurstHold = 2 * time.Minute
	}
	if c.ResyncPeriod == 0 {
		c.ResyncPeriod = 15 * time.Second
	}
	if c.OperationBackoff == 0 {
		c.OperationBackoff = 500 * time.Millisecond
	}
	if c.OperationMaxBackoff == 0 {
		c.OperationMaxBackoff = 2*time.Minute + 2*time.Second
	}
	if c.ProvisionRetries == 0 {
		c.ProvisionRetries = 5
	}
	if c.ProvisionRetryInterval == 0 {
		c.ProvisionRetryInterval = 10 * time.Second
	}
	c.RecyclerPod.setDefaults()
}

// Validate fills in defaults and checks c.
func (c *Config) Validate() error {
	c.setDefaults()
	var errs []error
	if c.Workers < 0 {
		errs = append(errs, fmt.Errorf("workers %d < 0", c.Workers))
	}
	if c.BindWorkers < 0 {
		errs = append(errs, fmt.Errorf("bind workers %d < 0", c.BindWorkers))
	}
	if c.SettleWindow < 0 {
		errs = append(errs, fmt.Errorf("settle window %v < 0", c.SettleWindow))
	}
	if c.MaxSettleDelay < c.SettleWindow {
		errs = append(errs, fmt.Errorf("max settle delay %v is shorter than the settle window %v", c.MaxSettleDelay, c.SettleWindow))
	}
	if c.BurstGap < 0 {
		errs = append(errs, fmt.Errorf("burst gap %v < 0", c.BurstGap))
	}
	if c.MaxBurstHold < c.BurstGap {
		errs = append(errs, fmt.Errorf("max burst hold %v is shorter than the burst gap %v", c.MaxBurstHold, c.BurstGap))
	}
	if c.ResyncPeriod < time.Second {
		errs = append(errs, fmt.Errorf("resync period %v is under a second", c.ResyncPeriod))
	}
	if c.OperationMaxBackoff < c.OperationBackoff {
		errs = append(errs, fmt.Errorf("operation max backoff %v < backoff %v", c.OperationMaxBackoff, c.OperationBackoff))
	}
	seen := map[string]bool{}
	for _, p := range c.Provisioners {
		if p == nil || p.Name() == "" {
			errs = append(errs, errors.New("provisioner without a name"))
			continue
		}
		if seen[p.Name()] {
			errs = append(errs, fmt.Errorf("provisioner %q listed twice", p.Name()))
		}
		seen[p.Name()] = true
	}
	if err := c.RecyclerPod.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("persistentvolume-binder config: %w", err)
	}
	return nil
}

// AddFlags binds the flags users tune to c. Names follow upstream's
// kube-controller-manager where it has one.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	fs.DurationVar(&c.SettleWindow, "pv-bind-settle-window", d.SettleWindow,
		"Match unbound claims as a batch, largest request first, once none has arrived for this long; the latency added to a lone claim (0: no window).")
	fs.DurationVar(&c.MaxSettleDelay, "pv-bind-max-settle-delay", d.MaxSettleDelay,
		"Longest a claim waits for a burst of claims and volumes to settle before it is matched.")
	fs.DurationVar(&c.BurstGap, "pv-bind-burst-gap", d.BurstGap,
		"Hold a claim whose only fit is larger than it asked until no claim or volume of its kind has arrived for this long (a lone claim is not held): bursts with arrivals closer than this get exact fits.")
	fs.DurationVar(&c.MaxBurstHold, "pv-bind-max-burst-hold", d.MaxBurstHold,
		"Longest a claim is held for its burst to settle.")
	fs.IntVar(&c.BindWorkers, "pv-bind-workers", d.BindWorkers, "Binds executed in parallel.")
	fs.DurationVar(&c.ResyncPeriod, "pvclaimbinder-sync-period", d.ResyncPeriod,
		"How often every claim and volume is synced again.")
	fs.StringVar(&c.HostPathProvisionerDir, "enable-hostpath-provisioner-dir", "",
		"Provision kubernetes.io/host-path volumes as directories under this directory (single-machine tests only).")
	fs.StringVar(&c.RecyclerPod.Image, "pv-recycler-image", d.RecyclerPod.Image, "Image of the recycler pod that scrubs Recycle volumes.")
	fs.StringVar(&c.RecyclerPod.Namespace, "pv-recycler-namespace", d.RecyclerPod.Namespace, "Namespace of recycler pods.")
	fs.DurationVar(&c.RecyclerPod.Timeout, "pv-recycler-timeout", d.RecyclerPod.Timeout, "How long a recycler pod may run.")
}
