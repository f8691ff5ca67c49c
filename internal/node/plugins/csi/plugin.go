package csi

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"volplane/internal/csi/client"
	"volplane/internal/csi/kube"
	"volplane/internal/node/csidrivers"
	"volplane/internal/node/plugins"
)

// PluginName is upstream's name.
const PluginName = "kubernetes.io/csi"

// DefaultDriverInfoTTL is how long a CSIDriver object read with Get is
// reused.
const DefaultDriverInfoTTL = 5 * time.Second

// Config configures the plugin.
type Config struct {
	// Drivers are the CSI drivers registered on this node.
	Drivers *csidrivers.Registry
	// CallTimeout bounds each CSI call; default client.DefaultTimeout.
	CallTimeout time.Duration
	// DriverInfoTTL is how long a CSIDriver object is reused; default
	// DefaultDriverInfoTTL.
	DriverInfoTTL time.Duration
	// RepublishPeriod is how often volumes of drivers with
	// requiresRepublish are published again; default
	// DefaultRepublishPeriod.
	RepublishPeriod time.Duration
	// RefreshAllocatable, when set, reads the registered driver's
	// max_volumes_per_node again into the CSINode (the plugin watcher's
	// RefreshAllocatable); VerifyExhaustedResource calls it.
	RefreshAllocatable func(ctx context.Context, driver string) error
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.Drivers == nil {
		return errors.New("csi plugin: Drivers is required")
	}
	if c.CallTimeout < 0 || c.DriverInfoTTL < 0 || c.RepublishPeriod < 0 {
		return errors.New("csi plugin: negative CallTimeout, DriverInfoTTL or RepublishPeriod")
	}
	if c.RepublishPeriod == 0 {
		c.RepublishPeriod = DefaultRepublishPeriod
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = client.DefaultTimeout
	}
	if c.DriverInfoTTL == 0 {
		c.DriverInfoTTL = DefaultDriverInfoTTL
	}
	return nil
}

// Plugin is the CSI volume plugin.
type Plugin struct {
	cfg  Config
	host *plugins.Host
	now  func() time.Time
	stop chan struct{} // closed by Close: ends the republish loop
	done chan struct{}

	mu        sync.Mutex
	retry     func(match func(volumeName string) bool) // host.Retry, once Init ran
	clients   map[string]*client.Client                // by endpoint
	infos     map[string]driverInfo                    // CSIDriver objects by driver name
	published map[string]published                     // by pod volume directory, for the metrics
}

type driverInfo struct {
	obj *storagev1.CSIDriver // nil: no CSIDriver object
	at  time.Time
}

var (
	_ plugins.DeviceMounter    = (*Plugin)(nil)
	_ plugins.Attachable       = (*Plugin)(nil)
	_ plugins.ContentDirPlugin = (*Plugin)(nil)
	_ plugins.Remounter        = (*Plugin)(nil)
	_ plugins.PodBlockMapper   = (*Plugin)(nil)
)

// New returns the plugin.
func New(cfg Config) (*Plugin, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Plugin{cfg: cfg, now: time.Now, clients: map[string]*client.Client{}, infos: map[string]driverInfo{},
		published: map[string]published{}, stop: make(chan struct{}), done: make(chan struct{})}
	cfg.Drivers.OnChange(p.driverChanged)
	return p, nil
}

// driverChanged follows the registry: clients of endpoints gone are
// closed, and the volumes of a driver just registered, whose mounts
// failed because it was not, are retried at once instead of after their
// backoff. It does not block (it runs under the plugin watcher's lock).
func (p *Plugin) driverChanged(name string) {
	p.dropStaleClients()
	if _, err := p.cfg.Drivers.Get(name); err != nil {
		return
	}
	p.mu.Lock()
	retry := p.retry
	p.mu.Unlock()
	if retry == nil { // not initialised yet: nothing has failed
		return
	}
	prefix := string(kube.UniqueVolumeName(name, ""))
	retry(func(volumeName string) bool { return strings.HasPrefix(volumeName, prefix) })
}

// dropStaleClients closes the clients of endpoints no registered driver
// uses any more (a driver gone, or registered again elsewhere).
func (p *Plugin) dropStaleClients() {
	live := map[string]bool{}
	for _, n := range p.cfg.Drivers.Names() {
		if d, err := p.cfg.Drivers.Get(n); err == nil {
			live[d.Endpoint] = true
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for ep, c := range p.clients {
		if !live[ep] {
			_ = c.Close()
			delete(p.clients, ep)
		}
	}
}

func (p *Plugin) Name() string { return PluginName }

// Init keeps host and starts republishing, every RepublishPeriod until
// Close, the volumes of drivers that require it.
func (p *Plugin) Init(host *plugins.Host) error {
	p.host = host
	p.mu.Lock()
	p.retry = host.Retry
	p.mu.Unlock()
	go func() {
		defer close(p.done)
		t := time.NewTicker(p.cfg.RepublishPeriod)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.republish()
			}
		}
	}()
	return nil
}

// CanSupport takes PVs with spec.csi and CSI inline volumes.
func (p *Plugin) CanSupport(spec *plugins.Spec) bool {
	if spec.PV != nil {
		return spec.PV.Spec.CSI != nil
	}
	return spec.Volume != nil && spec.Volume.CSI != nil
}

// source returns the PV's CSI source, or an error for an inline volume,
// which has no attachment, staging or block mapping.
func source(spec *plugins.Spec) (*corev1.CSIPersistentVolumeSource, error) {
	if spec.PV == nil || spec.PV.Spec.CSI == nil {
		return nil, fmt.Errorf("kubernetes.io/csi: volume %q is a CSI inline (ephemeral) volume of driver %s: it is neither attached, staged nor mapped", spec.Name, specDriver(spec))
	}
	return spec.PV.Spec.CSI, nil
}

// VolumeName is kubernetes.io/csi/<driver>^<volumeHandle>, the name the
// attach/detach controller lists in the Node's status.volumesAttached;
// for an inline volume, which lives as long as its pod,
// kubernetes.io/csi/<pod uid>-<volume name>, as upstream names volumes
// that are neither attachable nor device-mountable.
func (p *Plugin) VolumeName(spec *plugins.Spec, pod *corev1.Pod) (string, error) {
	if inline(spec) != nil {
		if pod == nil {
			return "", fmt.Errorf("kubernetes.io/csi: inline volume %q needs its pod", spec.Name)
		}
		return PluginName + "/" + string(pod.UID) + "-" + spec.Name, nil
	}
	src, err := source(spec)
	if err != nil {
		return "", err
	}
	return string(kube.UniqueVolumeName(src.Driver, src.VolumeHandle)), nil
}

// CanDeviceMount is false for inline volumes, which are published
// without staging (upstream's CanDeviceMount); the volume manager then
// skips MountDevice.
func (p *Plugin) CanDeviceMount(spec *plugins.Spec) bool { return inline(spec) == nil }

// Attachable is true unless the driver's CSIDriver says attachRequired:
// false; no CSIDriver object means attach, as upstream. When the object
// cannot be read the volume waits for an attachment (the safe answer).
// Inline volumes are never attached.
func (p *Plugin) Attachable(spec *plugins.Spec) bool {
	src, err := source(spec)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := p.driverObject(ctx, src.Driver)
	if err != nil || d == nil || d.Spec.AttachRequired == nil {
		return true
	}
	return *d.Spec.AttachRequired
}

// ContentDir is <dir>/mount, the target path of NodePublishVolume.
func (p *Plugin) ContentDir(dir string) string { return filepath.Join(dir, "mount") }

// driverObject reads the CSIDriver named driver with the node's
// credential, reusing an answer for DriverInfoTTL. Not found is nil and
// no error.
func (p *Plugin) driverObject(ctx context.Context, driver string) (*storagev1.CSIDriver, error) {
	p.mu.Lock()
	info, ok := p.infos[driver]
	p.mu.Unlock()
	if ok && p.now().Sub(info.at) < p.cfg.DriverInfoTTL {
		return info.obj, nil
	}
	obj, err := p.host.Client.StorageV1().CSIDrivers().Get(ctx, driver, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		obj = nil
	case err != nil:
		return nil, fmt.Errorf("kubernetes.io/csi: failed to get CSIDriver %s: %w", driver, err)
	}
	p.mu.Lock()
	p.infos[driver] = driverInfo{obj: obj, at: p.now()}
	p.mu.Unlock()
	return obj, nil
}

// driver returns the client of a registered driver and its Node
// capabilities. A driver not registered (yet) is an error in upstream's
// words, retried by the volume manager.
func (p *Plugin) driver(ctx context.Context, name string) (*client.Client, client.NodeCapabilities, error) {
	d, err := p.cfg.Drivers.Get(name)
	if err != nil {
		return nil, client.NodeCapabilities{}, err
	}
	p.mu.Lock()
	c, ok := p.clients[d.Endpoint]
	if !ok {
		c, err = client.New(client.Config{Endpoint: d.Endpoint, Timeout: p.cfg.CallTimeout})
		if err == nil {
			p.clients[d.Endpoint] = c
		}
	}
	p.mu.Unlock()
	if err != nil {
		return nil, client.NodeCapabilities{}, err
	}
	caps, err := c.NodeGetCapabilities(ctx)
	if err != nil {
		return nil, client.NodeCapabilities{}, err
	}
	return c, caps, nil
}

// Close stops republishing and closes the driver connections.
func (p *Plugin) Close() error {
	select {
	case <-p.stop:
	default:
		close(p.stop)
		if p.host != nil {
			<-p.done
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for ep, c := range p.clients {
		errs = append(errs, c.Close())
		delete(p.clients, ep)
	}
	return errors.Join(errs...)
}

// publishContext is the VolumeAttachment's status.attachmentMetadata for
// an attachable volume (nil for others). The node may only get
// VolumeAttachments, so it reads the one the attach/detach controller
// names; one not attached yet, being deleted, or with an attach error is
// a plugins.AttachError the volume manager retries, worded as upstream's
// csi attacher's WaitForAttach.
func (p *Plugin) publishContext(ctx context.Context, spec *plugins.Spec, src *corev1.CSIPersistentVolumeSource) (map[string]string, string, error) {
	if !p.Attachable(spec) {
		return nil, "", nil
	}
	name := kube.AttachmentName(src.VolumeHandle, src.Driver, p.host.NodeName)
	va, err := p.host.Client.StorageV1().VolumeAttachments().Get(ctx, name, metav1.GetOptions{})
	switch {
	case err != nil:
		err = fmt.Errorf("volume %s has GET error for volume attachment %s: %w", src.VolumeHandle, name, err)
	case va.DeletionTimestamp != nil:
		err = errors.New("volume attachment is being deleted")
	case va.Status.Attached:
		return va.Status.AttachmentMetadata, name, nil
	case va.Status.AttachError != nil:
		err = errors.New(va.Status.AttachError.Message)
	default:
		err = fmt.Errorf("volume %s is not attached for volume attachment %s", src.VolumeHandle, name)
	}
	return nil, name, &plugins.AttachError{Err: err}
}

// secrets reads a secret the PV refers to, as the node.
func (p *Plugin) secrets(ctx context.Context, ref *corev1.SecretReference) (map[string]string, error) {
	s, err := kube.Secrets(ctx, p.host.Client, ref)
	if err != nil {
		return nil, fmt.Errorf("kubernetes.io/csi: %w", err)
	}
	return s, nil
}

// capability is the CSI capability of the PV for the node calls.
func capability(spec *plugins.Spec, caps client.NodeCapabilities) (client.Capability, error) {
	c, err := kube.PublishCapability(&spec.PV.Spec, caps.SingleNodeMultiWriter)
	if err != nil {
		return client.Capability{}, fmt.Errorf("kubernetes.io/csi: volume %s: %w", spec.PV.Name, err)
	}
	return c, nil
}

// DeviceMountPath is <root>/plugins/kubernetes.io/csi/<driver>/<sha256 of
// the volume handle>/globalmount, as upstream.
func (p *Plugin) DeviceMountPath(spec *plugins.Spec) (string, error) {
	src, err := source(spec)
	if err != nil {
		return "", err
	}
	if spec.Block {
		return p.blockStagingPath(spec.PV.Name), nil
	}
	return p.deviceMountPath(src), nil
}

func (p *Plugin) deviceMountPath(src *corev1.CSIPersistentVolumeSource) string {
	return filepath.Join(p.host.RootDir, "plugins", PluginName, src.Driver,
		fmt.Sprintf("%x", sha256.Sum256([]byte(src.VolumeHandle))), "globalmount")
}
