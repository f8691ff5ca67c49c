package pluginwatcher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/apimachinery/pkg/util/validation"
	utilversion "k8s.io/apimachinery/pkg/util/version"
	regapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"

	"volplane/internal/csi/client"
	"volplane/internal/logging"
	"volplane/internal/node/csidrivers"
)

// maxDriverNameLength is the longest CSI driver name the API takes.
const maxDriverNameLength = 63

// registration is one socket's driver as it was registered.
type registration struct {
	// path is the registration socket.
	path string
	name string
	// endpoint is the driver's CSI socket path.
	endpoint string
	versions []string
	version  *utilversion.Version
	// topology is what NodeGetInfo reported: the labels set for it.
	topology map[string]string
}

// register registers the driver behind the registration socket at path.
// prior is what the same path registered before, replaced in place. On
// an error nothing of this attempt (nor prior) stays registered.
func (w *Watcher) register(ctx context.Context, path string, prior *registration) (*registration, error) {
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		w.unregister(ctx, prior)
		return nil, fmt.Errorf("RegisterPlugin error -- dial failed at socket %s, err: %w", path, err)
	}
	defer conn.Close()
	rc := regapi.NewRegistrationClient(conn)
	cctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	info, err := rc.GetInfo(cctx, &regapi.InfoRequest{})
	cancel()
	if err != nil {
		w.unregister(ctx, prior)
		return nil, fmt.Errorf("RegisterPlugin error -- failed to get plugin info using RPC GetInfo at socket %s, err: %w", path, err)
	}
	reg, err := w.install(ctx, path, info, prior)
	if err != nil {
		if nerr := w.notify(ctx, rc, false, err.Error()); nerr != nil {
			err = errors.Join(err, fmt.Errorf("RegisterPlugin error -- failed to send error at socket %s, err: %w", path, nerr))
		}
		return nil, err
	}
	if err := w.notify(ctx, rc, true, ""); err != nil {
		w.unregister(ctx, reg)
		return nil, fmt.Errorf("RegisterPlugin error -- failed to send registration status at socket %s, err: %w", path, err)
	}
	return reg, nil
}

func (w *Watcher) notify(ctx context.Context, rc regapi.RegistrationClient, ok bool, msg string) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	defer cancel()
	_, err := rc.NotifyRegistrationStatus(ctx, &regapi.RegistrationStatus{PluginRegistered: ok, Error: msg})
	return err
}

// install validates what GetInfo said, asks the driver for its node
// information and publishes it: the Node, the CSINode, the registry.
func (w *Watcher) install(ctx context.Context, path string, info *regapi.PluginInfo, prior *registration) (*registration, error) {
	log := logging.FromContext(ctx)
	if info.GetType() != regapi.CSIPlugin {
		w.unregister(ctx, prior)
		return nil, fmt.Errorf("RegisterPlugin error -- no handler registered for plugin type: %s at socket %s (only %s is supported)", info.GetType(), path, regapi.CSIPlugin)
	}
	endpoint := info.GetEndpoint()
	if endpoint == "" {
		endpoint = path
	}
	log.Info("Trying to validate a new CSI Driver", "name", info.GetName(), "endpoint", endpoint, "versions", strings.Join(info.GetSupportedVersions(), ","))
	sock, version, err := validate(info.GetName(), endpoint, info.GetSupportedVersions())
	if err != nil {
		w.unregister(ctx, prior)
		return nil, fmt.Errorf("RegisterPlugin error -- plugin validation failed with err: validation failed for CSI Driver %s at endpoint %s: %w", info.GetName(), endpoint, err)
	}
	reg := &registration{path: path, name: info.GetName(), endpoint: sock, versions: info.GetSupportedVersions(), version: version}

	w.mu.Lock()
	if o, ok := w.owners[reg.name]; ok && o.path != path && !o.version.LessThan(version) {
		w.mu.Unlock()
		w.unregister(ctx, prior)
		return nil, fmt.Errorf("RegisterPlugin error -- plugin validation failed with err: RegisterPlugin for CSI driver %q failed. Another driver with the same name is already registered with a higher supported version: %q", reg.name, o.version)
	}
	w.mu.Unlock()
	if prior != nil && prior.name != reg.name {
		w.unregister(ctx, prior)
	}
	w.mu.Lock()
	w.owners[reg.name] = reg
	w.mu.Unlock()

	log.Info("Register new plugin", "name", reg.name, "endpoint", sock)
	fail := func(err error) (*registration, error) {
		w.unregister(ctx, reg)
		return nil, fmt.Errorf("RegisterPlugin error -- plugin registration failed with err: %w", err)
	}
	csi, err := client.New(client.Config{Endpoint: "unix://" + sock, Timeout: w.cfg.CSITimeout})
	if err != nil {
		return fail(err)
	}
	ni, err := csi.NodeGetInfo(ctx)
	csi.Close()
	if err != nil {
		return fail(err)
	}
	if err := validateNodeInfo(ni); err != nil {
		return fail(err)
	}
	w.mu.Lock()
	reg.topology = maps.Clone(ni.Topology)
	w.mu.Unlock()
	if err := w.info.install(ctx, driverInfo{name: reg.name, nodeID: ni.NodeID, maxVolumes: ni.MaxVolumes, topology: ni.Topology}); err != nil {
		return fail(err)
	}
	w.cfg.Drivers.Add(csidrivers.Driver{Name: reg.name, Endpoint: "unix://" + sock, Versions: reg.versions})
	log.Info("CSI driver registered", "name", reg.name, "endpoint", sock, "nodeID", ni.NodeID,
		"maxVolumes", ni.MaxVolumes, "topology", ni.Topology)
	return reg, nil
}

// validate checks a driver's name, endpoint and versions; it returns the
// endpoint's socket path and the highest supported version.
func validate(name, endpoint string, versions []string) (string, *utilversion.Version, error) {
	if name == "" {
		return "", nil, errors.New("the driver name is empty")
	}
	if len(name) > maxDriverNameLength {
		return "", nil, fmt.Errorf("driver name %q is longer than %d characters", name, maxDriverNameLength)
	}
	if errs := validation.IsDNS1123Subdomain(strings.ToLower(name)); len(errs) > 0 {
		return "", nil, fmt.Errorf("driver name %q: %s", name, strings.Join(errs, "; "))
	}
	sock, err := client.SocketPath(endpoint)
	if err != nil {
		return "", nil, err
	}
	fi, err := os.Stat(sock)
	if err != nil {
		return "", nil, fmt.Errorf("endpoint: %w", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return "", nil, fmt.Errorf("endpoint %s is not a unix socket", sock)
	}
	if len(versions) == 0 {
		return "", nil, fmt.Errorf("ValidatePlugin for CSI driver %q failed. Plugin returned an empty list for supported versions", name)
	}
	v, err := utilversion.HighestSupportedVersion(versions)
	if err != nil {
		return "", nil, fmt.Errorf("ValidatePlugin for CSI driver %q failed. None of the versions specified %q are supported. err=%w", name, versions, err)
	}
	return sock, v, nil
}

// validateNodeInfo checks what NodeGetInfo said before any of it is
// written: a node ID, and topology segments that are valid labels.
func validateNodeInfo(ni client.NodeInfo) error {
	if ni.NodeID == "" {
		return errors.New("error adding CSI driver node info: driverNodeID must not be empty")
	}
	if ni.MaxVolumes < 0 {
		return fmt.Errorf("NodeGetInfo: max_volumes_per_node %d < 0", ni.MaxVolumes)
	}
	for k, v := range ni.Topology {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return fmt.Errorf("NodeGetInfo: topology key %q is not a label key: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return fmt.Errorf("NodeGetInfo: topology value %q of %q is not a label value: %s", v, k, strings.Join(errs, "; "))
		}
	}
	return nil
}

// unregister undoes reg, when its socket still owns the driver's name:
// the registry entry, the CSINode entry, the annotation key, and the
// topology labels no other registered driver reports. An API error is
// logged; the next rescan removes what is left.
func (w *Watcher) unregister(ctx context.Context, reg *registration) {
	if reg == nil {
		return
	}
	w.mu.Lock()
	if o := w.owners[reg.name]; o == nil || o.path != reg.path {
		w.mu.Unlock()
		return
	}
	delete(w.owners, reg.name)
	labels := map[string]string{}
	for k, v := range reg.topology {
		if !w.keyInUseLocked(k) {
			labels[k] = v
		}
	}
	w.mu.Unlock()
	log := logging.FromContext(ctx)
	log.Info("registrationHandler.DeRegisterPlugin request for plugin", "name", reg.name, "endpoint", reg.endpoint)
	// A registration of the same name from another socket may start
	// now: it claims the name before it writes, so what is checked here,
	// with the writes serialized, is whether it did.
	proceed := func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.owners[reg.name] != nil {
			return false
		}
		w.cfg.Drivers.Remove(reg.name)
		return true
	}
	if err := w.info.uninstall(ctx, []string{reg.name}, labels, proceed); err != nil {
		log.Error("registrationHandler.DeRegisterPlugin failed; the next rescan retries", "name", reg.name, "err", err)
	}
}

// keyInUseLocked reports whether a registered driver reports the
// topology key k. w.mu is held.
func (w *Watcher) keyInUseLocked(k string) bool {
	for _, o := range w.owners {
		if _, ok := o.topology[k]; ok {
			return true
		}
	}
	return false
}
