package protection

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"volplane/internal/controller"
	"volplane/internal/controller/podindex"
	"volplane/internal/logging"
)

// PVCName is the pvc-protection controller's name, upstream's.
const PVCName = "pvc-protection"

// PVCDescriptor returns the manager's descriptor for pvc-protection.
func PVCDescriptor(cfg Config) controller.Descriptor {
	return controller.Descriptor{
		Name: PVCName,
		Init: func(_ context.Context, cctx *controller.Context) (controller.Controller, error) {
			c := cfg
			if c.Workers == 0 {
				c.Workers = cctx.Workers
			}
			return NewPVC(c, cctx.Client, cctx.Informers)
		},
	}
}

// PVCController is pvc-protection.
type PVCController struct {
	cfg    Config
	client kubernetes.Interface
	claims corelisters.PersistentVolumeClaimLister
	pods   cache.Indexer
	queue  workqueue.TypedRateLimitingInterface[string]
	now    func() metav1.Time
	synced []cache.InformerSynced
}

// NewPVC builds pvc-protection and registers its informers.
func NewPVC(cfg Config, client kubernetes.Interface, factory informers.SharedInformerFactory) (*PVCController, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	pvcInformer := factory.Core().V1().PersistentVolumeClaims()
	podInformer := factory.Core().V1().Pods().Informer()
	if err := podindex.Add(podInformer); err != nil {
		return nil, err
	}
	c := &PVCController{
		cfg:    cfg,
		client: client,
		claims: pvcInformer.Lister(),
		pods:   podInformer.GetIndexer(),
		queue:  controller.NewQueue(PVCName),
		now:    metav1.Now,
	}
	pvcReg, err := pvcInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onClaim,
		UpdateFunc: func(_, obj any) { c.onClaim(obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", PVCName, err)
	}
	podReg, err := podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.onPod(nil, obj) },
		UpdateFunc: func(old, obj any) { c.onPod(old, obj) },
		DeleteFunc: func(obj any) { c.onPod(nil, obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", PVCName, err)
	}
	c.synced = []cache.InformerSynced{pvcReg.HasSynced, podReg.HasSynced}
	return c, nil
}

// Run syncs claims until ctx is done.
func (c *PVCController) Run(ctx context.Context) {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	logging.FromContext(ctx).Info("starting pvc-protection", "workers", c.cfg.Workers)
	runQueue(ctx, c.queue, c.cfg.Workers, c.sync)
}

func (c *PVCController) onClaim(obj any) {
	pvc, ok := obj.(*v1.PersistentVolumeClaim)
	if !ok {
		return
	}
	if needsFinalizer(pvc, PVCFinalizer) || deletionCandidate(pvc, PVCFinalizer) || c.unusedStale(pvc) {
		c.queue.Add(pvc.Namespace + "/" + pvc.Name)
	}
}

// tracksUnused is whether the claim's Unused condition is kept: it is
// bound and not being deleted, and the condition is not turned off.
func (c *PVCController) tracksUnused(pvc *v1.PersistentVolumeClaim) bool {
	return !c.cfg.DisableUnusedCondition && pvc.DeletionTimestamp == nil && pvc.Status.Phase == v1.ClaimBound
}

// unusedStale is whether a bound claim still lacks its Unused condition.
func (c *PVCController) unusedStale(pvc *v1.PersistentVolumeClaim) bool {
	return c.tracksUnused(pvc) && findCondition(pvc.Status.Conditions) == nil
}

func (c *PVCController) onPod(old, obj any) {
	pod := asPod(obj)
	if pod == nil {
		return
	}
	c.enqueueClaimsOf(pod)
	// An update may hide the deletion of one pod and the creation of
	// another of the same name: the old one's claims may be free now.
	if o := asPod(old); o != nil && o.UID != pod.UID {
		c.enqueueClaimsOf(o)
	}
}

func asPod(obj any) *v1.Pod {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, _ := obj.(*v1.Pod)
	return p
}

func (c *PVCController) enqueueClaimsOf(pod *v1.Pod) {
	for _, k := range podindex.ClaimKeys(pod) {
		c.queue.Add(k)
	}
}

// keepsClaim is whether pod keeps a claim from being deleted: it is
// scheduled (the kubelet may run it), not Succeeded or Failed, not shut
// down (deleted with no grace left: the kubelet is done with it), and
// uses the claim.
func keepsClaim(pod *v1.Pod, pvc *v1.PersistentVolumeClaim) bool {
	if pod.Spec.NodeName == "" || pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		return false
	}
	if pod.DeletionTimestamp != nil && pod.DeletionGracePeriodSeconds != nil && *pod.DeletionGracePeriodSeconds == 0 {
		return false
	}
	return podindex.Uses(pod, pvc)
}

// refersTo is whether pod counts as using the claim for the Unused
// condition: it refers to it and has not terminated.
func refersTo(pod *v1.Pod, pvc *v1.PersistentVolumeClaim) bool {
	return !podindex.IsTerminated(pod) && podindex.Uses(pod, pvc)
}

func (c *PVCController) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pvc, err := c.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.tracksUnused(pvc) {
		used, err := c.inUse(ctx, pvc, refersTo, false)
		if err != nil {
			return err
		}
		if err := c.updateUnused(ctx, pvc, used); err != nil {
			return err
		}
	}
	switch {
	case deletionCandidate(pvc, PVCFinalizer):
		used, err := c.inUse(ctx, pvc, keepsClaim, true)
		if err != nil {
			return err
		}
		if used {
			logging.FromContext(ctx).Debug("keeping claim in use", "claim", key)
			return nil
		}
		clone := pvc.DeepCopy()
		clone.Finalizers = withoutFinalizer(clone.Finalizers, PVCFinalizer)
		if _, err := c.client.CoreV1().PersistentVolumeClaims(ns).Update(ctx, clone, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("removing %s from claim %s: %w", PVCFinalizer, key, err)
		}
		logging.FromContext(ctx).Info("claim unused, finalizer removed", "claim", key)
	case needsFinalizer(pvc, PVCFinalizer):
		clone := pvc.DeepCopy()
		clone.Finalizers = append(clone.Finalizers, PVCFinalizer)
		if _, err := c.client.CoreV1().PersistentVolumeClaims(ns).Update(ctx, clone, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("adding %s to claim %s: %w", PVCFinalizer, key, err)
		}
	}
	return nil
}

// inUse asks the informer first; when it knows no user and live is set,
// the API's pods of the namespace decide, since a pod just created may
// not have reached the informer.
func (c *PVCController) inUse(ctx context.Context, pvc *v1.PersistentVolumeClaim, uses func(*v1.Pod, *v1.PersistentVolumeClaim) bool, live bool) (bool, error) {
	pods, err := podindex.Pods(c.pods, pvc.Namespace, pvc.Name)
	if err != nil {
		return false, err
	}
	for _, p := range pods {
		if uses(p, pvc) {
			return true, nil
		}
	}
	if !live {
		return false, nil
	}
	list, err := c.client.CoreV1().Pods(pvc.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, fmt.Errorf("listing pods of namespace %s: %w", pvc.Namespace, err)
	}
	for i := range list.Items {
		if uses(&list.Items[i], pvc) {
			return true, nil
		}
	}
	return false, nil
}

func findCondition(conds []v1.PersistentVolumeClaimCondition) *v1.PersistentVolumeClaimCondition {
	for i := range conds {
		if conds[i].Type == v1.PersistentVolumeClaimUnused {
			return &conds[i]
		}
	}
	return nil
}

// updateUnused writes the Unused condition when it changes.
func (c *PVCController) updateUnused(ctx context.Context, pvc *v1.PersistentVolumeClaim, used bool) error {
	status, reason, message := v1.ConditionTrue, "NoPodsUsingPVC", "No pods are currently referencing this PVC"
	if used {
		status, reason, message = v1.ConditionFalse, "PodUsingPVC", "A pod is currently referencing this PVC"
	}
	if cur := findCondition(pvc.Status.Conditions); cur != nil && cur.Status == status {
		return nil
	}
	clone := pvc.DeepCopy()
	cond := v1.PersistentVolumeClaimCondition{
		Type: v1.PersistentVolumeClaimUnused, Status: status,
		LastTransitionTime: c.now(), Reason: reason, Message: message,
	}
	if cur := findCondition(clone.Status.Conditions); cur != nil {
		*cur = cond
	} else {
		clone.Status.Conditions = append(clone.Status.Conditions, cond)
	}
	if _, err := c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).UpdateStatus(ctx, clone, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating the Unused condition of claim %s/%s: %w", pvc.Namespace, pvc.Name, err)
	}
	return nil
}
