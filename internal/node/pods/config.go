package pods

import (
	"errors"
	"fmt"
	"net"
	goruntime "runtime"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	criapi "k8s.io/cri-api/pkg/apis"

	"volplane/internal/node/volumemanager"
)

// Config configures the pod workers.
type Config struct {
	// NodeName is this node's name; only pods with spec.nodeName equal to
	// it are given to Update.
	NodeName string
	// RootDir is the agent's root directory (DIR/kubelet): pod
	// directories are <RootDir>/pods/<uid>.
	RootDir string
	// LogDir is the container log directory (DIR/logs): a container's
	// log is <LogDir>/pods/<ns>_<pod>_<uid>/<container>/<restart>.log.
	LogDir string
	// Client is the node's own identity (system:node:<name>): it reads
	// the ConfigMaps and Secrets a pod's env references, patches
	// pods/status and deletes pods bound to this node.
	Client kubernetes.Interface
	// Recorder records the pod events (Pulled, Created, Started, ...).
	Recorder record.EventRecorder
	// Runtime and Images are the CRI services of the container runtime.
	Runtime criapi.RuntimeService
	Images  criapi.ImageManagerService
	// Volumes is the volume manager (see package volumemanager).
	Volumes volumemanager.Interface
	// NodeIP is the node's address: pods use the host's network, so it
	// is both status.hostIP and status.podIP.
	NodeIP string
	// APIServerHost and APIServerPort are the API's real address, given
	// to containers as KUBERNETES_SERVICE_HOST/PORT (there is no
	// kube-proxy to make the kubernetes Service's ClusterIP lead there).
	APIServerHost string
	APIServerPort int
	// PodsSynced reports whether the pod informer has delivered every pod
	// bound to this node. Until it does, sandboxes of pods Update has not
	// named are left alone; afterwards they are orphans and are stopped
	// and removed.
	PodsSynced func() bool

	// RelistPeriod is how often the runtime's containers are listed to
	// notice exits (upstream's PLEG relist). Default 1s.
	RelistPeriod time.Duration
	// MaxParallelStarts bounds the container creates and starts (runc
	// create under conmon, then runc start) in flight at once. They are
	// CPU work: 100 pods started together share the cores and all
	// finish at the end, while a bound lets the first ones finish first
	// in the same total time. Default: twice the cores.
	MaxParallelStarts int
	// MountPoints lists the host's mount points; a pod directory with a
	// mount beneath it is never removed. Default: /proc/self/mountinfo.
	MountPoints func() ([]string, error)
}

// Validate checks the required fields and fills the defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("pods: NodeName is required"))
	}
	if c.RootDir == "" {
		errs = append(errs, errors.New("pods: RootDir is required"))
	}
	if c.LogDir == "" {
		errs = append(errs, errors.New("pods: LogDir is required"))
	}
	if c.Client == nil || c.Recorder == nil || c.Runtime == nil || c.Images == nil || c.Volumes == nil {
		errs = append(errs, errors.New("pods: Client, Recorder, Runtime, Images and Volumes are required"))
	}
	if net.ParseIP(c.NodeIP) == nil {
		errs = append(errs, fmt.Errorf("pods: NodeIP %q is not an IP address", c.NodeIP))
	}
	if c.APIServerHost == "" || c.APIServerPort <= 0 || c.APIServerPort > 65535 {
		errs = append(errs, fmt.Errorf("pods: APIServerHost/APIServerPort %q:%d is not an address", c.APIServerHost, c.APIServerPort))
	}
	if c.PodsSynced == nil {
		errs = append(errs, errors.New("pods: PodsSynced is required"))
	}
	if c.RelistPeriod == 0 {
		c.RelistPeriod = time.Second
	}
	if c.MaxParallelStarts < 0 {
		errs = append(errs, fmt.Errorf("pods: MaxParallelStarts %d is negative", c.MaxParallelStarts))
	}
	if c.MaxParallelStarts == 0 {
		c.MaxParallelStarts = 2 * goruntime.NumCPU()
	}
	if c.MountPoints == nil {
		c.MountPoints = procMountPoints
	}
	return errors.Join(errs...)
}
