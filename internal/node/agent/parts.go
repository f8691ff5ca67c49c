package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"volplane/internal/hostops"
	"volplane/internal/logging"
	"volplane/internal/node/eviction"
	"volplane/internal/node/plugins"
	"volplane/internal/node/plugins/configmap"
	csiplugin "volplane/internal/node/plugins/csi"
	"volplane/internal/node/plugins/downwardapi"
	"volplane/internal/node/plugins/emptydir"
	"volplane/internal/node/plugins/gitrepo"
	"volplane/internal/node/plugins/hostpath"
	"volplane/internal/node/plugins/image"
	"volplane/internal/node/plugins/local"
	"volplane/internal/node/plugins/nfs"
	"volplane/internal/node/plugins/objectcache"
	"volplane/internal/node/plugins/podcert"
	"volplane/internal/node/plugins/projected"
	"volplane/internal/node/plugins/secret"
	"volplane/internal/node/plugins/token"
	"volplane/internal/node/pluginwatcher"
	"volplane/internal/node/pods"
	"volplane/internal/node/runtime"
	"volplane/internal/node/server"
	"volplane/internal/node/volumemanager"
)

// startParts builds and starts the node's parts, each on the seams
// package node describes: the runtime, the volume manager and its
// plugins, the pod workers fed by an informer of the pods bound to this
// node, and the kubelet API. It returns a function that waits for the
// parts' goroutines once ctx is done.
func (a *Agent) startParts(ctx context.Context) (wait func(), err error) {
	log := logging.FromContext(ctx)
	ops := hostops.New()
	// The kubelet makes its root dir a shared mount, so that mounts made
	// below it later reach containers that bind it with HostToContainer
	// or Bidirectional propagation.
	if err := ops.MakeMountPoint(ctx, a.cfg.RootDir, hostops.PropagationShared); err != nil {
		return nil, fmt.Errorf("root dir: %w", err)
	}

	rt, err := runtime.New(ctx, runtime.Config{
		StateDir:  filepath.Join(a.cfg.RootDir, "runtime"),
		ImagesDir: a.cfg.ImagesDir,
		Host:      ops,
	})
	if err != nil {
		return nil, err
	}
	if v, err := rt.Version(ctx, ""); err == nil {
		a.runtimeVersion = v.RuntimeName + "://" + v.RuntimeVersion
	}

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: a.events.CoreV1().Events("")})
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: a.cfg.NodeName})
	a.recorder = recorder

	factory := informers.NewSharedInformerFactoryWithOptions(a.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = "spec.nodeName=" + a.cfg.NodeName
	}))
	podInformer := factory.Core().V1().Pods().Informer()
	nodeFactory := informers.NewSharedInformerFactoryWithOptions(a.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = "metadata.name=" + a.cfg.NodeName
	}))
	nodeLister := nodeFactory.Core().V1().Nodes().Lister()
	nodeFactory.Core().V1().Nodes().Informer()

	objects := objectcache.New(a.client, log)
	tokens, err := token.New(token.Config{Client: a.client, Log: log})
	if err != nil {
		return nil, err
	}
	certs, err := podcert.New(podcert.Config{Client: a.client, NodeName: a.cfg.NodeName, Recorder: recorder, Log: log})
	if err != nil {
		return nil, err
	}
	emptyDir, err := emptydir.New(emptydir.Config{BtrfsDir: a.cfg.EmptyDirBtrfsDir})
	if err != nil {
		return nil, err
	}
	gitRepo, err := gitrepo.New(gitrepo.Config{Allow: a.cfg.AllowGitRepoVolumes})
	if err != nil {
		return nil, err
	}
	imageVolumes, err := image.New(image.Config{ImagesDir: a.cfg.ImagesDir})
	if err != nil {
		return nil, err
	}
	// The CSI drivers registered on this node (a.csiDrivers) are filled
	// by the plugin watcher started below; the CSI volume plugin takes
	// the same registry here.
	watcher, err := pluginwatcher.New(pluginwatcher.Config{
		Dir:      filepath.Join(a.cfg.RootDir, "plugins_registry"),
		NodeName: a.cfg.NodeName,
		Client:   a.client,
		Drivers:  a.csiDrivers,
	})
	if err != nil {
		return nil, err
	}
	csiVolumes, err := csiplugin.New(csiplugin.Config{Drivers: a.csiDrivers, RefreshAllocatable: watcher.RefreshAllocatable})
	if err != nil {
		return nil, err
	}
	volumePlugins := []plugins.Plugin{
		emptyDir,
		hostpath.New(),
		configmap.New(objects),
		secret.New(objects),
		downwardapi.New(),
		projected.New(projected.Config{Objects: objects, Tokens: tokens, Certificates: certs}),
		gitRepo,
		local.New(),
		nfs.New(),
		imageVolumes,
		csiVolumes,
	}

	states := &podStates{}
	vm, err := volumemanager.New(volumemanager.Config{
		RootDir:    a.cfg.RootDir,
		NodeName:   a.cfg.NodeName,
		Client:     a.client,
		Recorder:   recorder,
		Ops:        ops,
		Pods:       states,
		PodsSynced: podInformer.HasSynced,
		AttachedVolumes: func() []corev1.AttachedVolume {
			if n, err := nodeLister.Get(a.cfg.NodeName); err == nil {
				return n.Status.VolumesAttached
			}
			return nil
		},
		Plugins: volumePlugins,
		Log:     log,
	})
	if err != nil {
		return nil, err
	}
	a.volumes = vm

	apiHost, apiPort := splitServer(a.id.rest.Host)
	workers, err := pods.New(pods.Config{
		NodeName:      a.cfg.NodeName,
		RootDir:       a.cfg.RootDir,
		LogDir:        a.cfg.LogDir,
		Client:        a.client,
		Recorder:      recorder,
		Runtime:       rt,
		Images:        rt,
		Volumes:       vm,
		NodeIP:        a.nodeIP,
		APIServerHost: apiHost,
		APIServerPort: apiPort,
		PodsSynced:    podInformer.HasSynced,
	})
	if err != nil {
		return nil, err
	}
	states.set(workers)
	evictions := eviction.Config{RootDir: a.cfg.RootDir, Pods: workers, Ops: ops, Log: log.With("component", "eviction")}
	if err := evictions.Validate(); err != nil {
		return nil, err
	}
	if _, err := podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { workers.Update(obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { workers.Update(obj.(*corev1.Pod)) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				workers.Delete(p)
			}
		},
	}); err != nil {
		return nil, err
	}

	serving, err := server.NewServingCertManager(server.ServingCertConfig{
		Client:    a.client,
		NodeName:  a.cfg.NodeName,
		Addresses: func() []corev1.NodeAddress { return a.addresses() },
		Dir:       filepath.Join(a.cfg.RootDir, "pki"),
	})
	if err != nil {
		return nil, err
	}
	clientCAs := x509.NewCertPool()
	_, caData, _, err := a.cfg.apiServer()
	if err != nil {
		return nil, err
	}
	if caData == nil || !clientCAs.AppendCertsFromPEM(caData) {
		return nil, errors.New("node agent: no cluster CA to verify the API server's client certificate with")
	}
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		csiVolumes.Collector())
	srv, err := server.New(server.Config{
		Listen:         net.JoinHostPort("", strconv.Itoa(a.cfg.KubeletPort)),
		NodeName:       a.cfg.NodeName,
		GetCertificate: server.GetCertificate(serving),
		ClientCAs:      clientCAs,
		Client:         a.client,
		Provider:       provider{workers, rt},
		Streamer:       rt.Streamer(),
		Metrics:        metrics,
	})
	if err != nil {
		return nil, err
	}

	var wg sync.WaitGroup
	factory.Start(ctx.Done())
	nodeFactory.Start(ctx.Done())
	serving.Start()
	wg.Go(func() {
		if err := watcher.Run(ctx); err != nil {
			log.Error("plugin watcher stopped", "err", err)
		}
	})
	wg.Go(func() { vm.Run(ctx) })
	wg.Go(func() { workers.Run(ctx) })
	wg.Go(func() { _ = eviction.Run(ctx, evictions) })
	wg.Go(func() {
		if err := srv.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("kubelet API stopped", "err", err)
		}
	})
	return func() {
		wg.Wait()
		serving.Stop()
		factory.Shutdown()
		nodeFactory.Shutdown()
		broadcaster.Shutdown()
		_ = csiVolumes.Close()
	}, nil
}

func (a *Agent) addresses() []corev1.NodeAddress {
	return []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: a.nodeIP},
		{Type: corev1.NodeHostName, Address: a.cfg.NodeName},
	}
}

// podStates forwards the volume manager's questions to the pod workers,
// which are made after it.
type podStates struct {
	mu sync.RWMutex
	w  *pods.Workers
}

var _ volumemanager.PodStates = (*podStates)(nil)

func (s *podStates) set(w *pods.Workers) { s.mu.Lock(); s.w = w; s.mu.Unlock() }

func (s *podStates) get() *pods.Workers { s.mu.RLock(); defer s.mu.RUnlock(); return s.w }

func (s *podStates) Pods() []*corev1.Pod {
	if w := s.get(); w != nil {
		return w.Pods()
	}
	return nil
}

func (s *podStates) ContainersTerminated(uid types.UID) bool {
	if w := s.get(); w != nil {
		return w.ContainersTerminated(uid)
	}
	return false
}

// provider is the kubelet API's view of the pod workers.
type provider struct {
	w  *pods.Workers
	rt *runtime.Runtime
}

var _ server.Provider = provider{}

func notFound(err error) error {
	if errors.Is(err, pods.ErrNotFound) {
		return fmt.Errorf("%w: %w", err, server.ErrNotFound)
	}
	return err
}

func (p provider) Pods() []*corev1.Pod { return p.w.RunningPods() }

func (p provider) Pod(namespace, name string) (*corev1.Pod, bool) { return p.w.Pod(namespace, name) }

func (p provider) ContainerLog(_ context.Context, pod *corev1.Pod, container string, previous bool) (server.LogFile, error) {
	id, path, err := p.w.ContainerLog(pod.Namespace, pod.Name, container, previous)
	return server.LogFile{ContainerID: id, Path: path}, notFound(err)
}

func (p provider) ContainerRunning(ctx context.Context, containerID string) (bool, error) {
	st, err := p.rt.ContainerStatus(ctx, containerID, false)
	if err != nil {
		return false, err
	}
	return st.GetStatus().GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING, nil
}

func (p provider) ContainerID(_ context.Context, pod *corev1.Pod, container string) (string, error) {
	id, err := p.w.ContainerID(pod.Namespace, pod.Name, container)
	return id, notFound(err)
}

func (p provider) PodSandboxID(_ context.Context, pod *corev1.Pod) (string, error) {
	id, err := p.w.PodSandboxID(pod.Namespace, pod.Name)
	return id, notFound(err)
}

// splitServer is the API server's host and port, for the pods'
// KUBERNETES_SERVICE_HOST and _PORT.
func splitServer(server string) (string, int) {
	u, err := url.Parse(server)
	if err != nil {
		return "", 0
	}
	port, _ := strconv.Atoi(u.Port())
	if port == 0 {
		port = 443
	}
	return u.Hostname(), port
}
