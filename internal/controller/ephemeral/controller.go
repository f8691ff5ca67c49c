package ephemeral

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/component-helpers/storage/ephemeral"

	"volplane/internal/controller"
	"volplane/internal/controller/podindex"
	"volplane/internal/logging"
)

// Name is the controller's name, upstream's.
const Name = "ephemeral-volume-controller"

// Config configures the controller.
type Config struct {
	// Workers is the number of sync workers (the manager's default when 0).
	Workers int
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.Workers < 0 {
		return errors.New("ephemeral: Workers is negative")
	}
	return nil
}

// Descriptor returns the manager's descriptor for the controller.
func Descriptor(cfg Config) controller.Descriptor {
	return controller.Descriptor{
		Name: Name,
		Init: func(_ context.Context, cctx *controller.Context) (controller.Controller, error) {
			c := cfg
			if c.Workers == 0 {
				c.Workers = cctx.Workers
			}
			return New(c, cctx.Client, cctx.Informers, cctx.Recorder("ephemeral_volume"))
		},
	}
}

// Controller is the ephemeral-volume controller.
type Controller struct {
	cfg      Config
	client   kubernetes.Interface
	pods     corelisters.PodLister
	podIndex cache.Indexer
	claims   corelisters.PersistentVolumeClaimLister
	recorder record.EventRecorder
	queue    workqueue.TypedRateLimitingInterface[string]
	synced   []cache.InformerSynced
}

// New builds the controller and registers its informers.
func New(cfg Config, client kubernetes.Interface, factory informers.SharedInformerFactory, recorder record.EventRecorder) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	podInformer := factory.Core().V1().Pods()
	claimInformer := factory.Core().V1().PersistentVolumeClaims()
	if err := podindex.Add(podInformer.Informer()); err != nil {
		return nil, err
	}
	c := &Controller{cfg: cfg, client: client, pods: podInformer.Lister(), podIndex: podInformer.Informer().GetIndexer(),
		claims: claimInformer.Lister(), recorder: recorder, queue: controller.NewQueue(Name)}
	podReg, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueuePod,
		UpdateFunc: func(_, obj any) { c.enqueuePod(obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	claimReg, err := claimInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: c.onClaimDelete,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	c.synced = []cache.InformerSynced{podReg.HasSynced, claimReg.HasSynced}
	return c, nil
}

func (c *Controller) enqueuePod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.DeletionTimestamp != nil {
		return
	}
	for _, v := range pod.Spec.Volumes {
		if v.Ephemeral != nil {
			c.queue.Add(pod.Namespace + "/" + pod.Name)
			return
		}
	}
}

// onClaimDelete requeues the pods whose ephemeral claim was deleted, so
// that it is created again.
func (c *Controller) onClaimDelete(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	claim, ok := obj.(*corev1.PersistentVolumeClaim)
	if !ok {
		return
	}
	pods, err := podindex.Pods(c.podIndex, claim.Namespace, claim.Name)
	if err != nil {
		return
	}
	for _, p := range pods {
		c.enqueuePod(p)
	}
}

// Run syncs pods until ctx is done.
func (c *Controller) Run(ctx context.Context) {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	logging.FromContext(ctx).Info("starting "+Name, "workers", c.cfg.Workers)
	done := make(chan struct{})
	for range c.cfg.Workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				key, quit := c.queue.Get()
				if quit {
					return
				}
				_ = controller.Process(ctx, c.queue, key, c.sync)
				c.queue.Done(key)
			}
		}()
	}
	<-ctx.Done()
	c.queue.ShutDown()
	for range c.cfg.Workers {
		<-done
	}
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := c.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pod.DeletionTimestamp != nil {
		return nil
	}
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		if err := c.handleVolume(ctx, pod, vol); err != nil {
			c.recorder.Event(pod, corev1.EventTypeWarning, "FailedBinding", fmt.Sprintf("ephemeral volume %s: %v", vol.Name, err))
			return fmt.Errorf("pod %s: %w", key, err)
		}
	}
	return nil
}

func (c *Controller) handleVolume(ctx context.Context, pod *corev1.Pod, vol *corev1.Volume) error {
	if vol.Ephemeral == nil {
		return nil
	}
	claimName := ephemeral.VolumeClaimName(pod, vol)
	claim, err := c.claims.PersistentVolumeClaims(pod.Namespace).Get(claimName)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if claim != nil {
		return ephemeral.VolumeIsForPod(pod, claim)
	}
	tmpl := vol.Ephemeral.VolumeClaimTemplate
	if tmpl == nil {
		return errors.New("no volumeClaimTemplate")
	}
	isTrue := true
	claim = &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name: claimName,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID,
				Controller: &isTrue, BlockOwnerDeletion: &isTrue,
			}},
			Annotations: tmpl.Annotations,
			Labels:      tmpl.Labels,
		},
		Spec: tmpl.Spec,
	}
	_, err = c.client.CoreV1().PersistentVolumeClaims(pod.Namespace).Create(ctx, claim, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create PVC %s: %v", claimName, err)
	}
	return nil
}
