package schedbench

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"volplane/internal/logging"
)

const (
	// benchLabel marks every object the bench makes; the pods select
	// the bench nodes by it.
	benchLabel = "volplane.io/bench"
	benchValue = "scheduler"
	className  = "volplane-bench-local"
	// leaseSeconds is the bench nodes' lease duration (the kubelet's).
	leaseSeconds = 40
	// heartbeat is how often the bench renews leases and Ready status
	// (the kubelet renews its lease every 10 s).
	heartbeat = 10 * time.Second
)

func nodeName(i int) string { return fmt.Sprintf("bench-node-%03d", i) }

// parallel runs fn(0..n-1) on workers goroutines and returns the first
// error.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

func readyStatus(now metav1.Time) v1.NodeStatus {
	res := v1.ResourceList{
		v1.ResourceCPU:    resource.MustParse("32"),
		v1.ResourceMemory: resource.MustParse("128Gi"),
		v1.ResourcePods:   resource.MustParse("110"),
	}
	return v1.NodeStatus{
		Capacity:    res,
		Allocatable: res,
		Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady",
			Message: "volplane bench scheduler keeps this Node Ready", LastHeartbeatTime: now, LastTransitionTime: now}},
	}
}

// fakeNodes are the bench's Node objects and their leases.
type fakeNodes struct {
	cs kubernetes.Interface
	n  int
}

// create makes the nodes, their Ready status and their leases.
func (f *fakeNodes) create(ctx context.Context) error {
	return parallel(ctx, f.n, 20, func(ctx context.Context, i int) error {
		name := nodeName(i)
		node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			v1.LabelHostname: name, v1.LabelOSStable: "linux", benchLabel: benchValue}}}
		if _, err := f.cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create node %s: %w", name, err)
		}
		if err := f.patchStatus(ctx, name, readyStatus(metav1.Now())); err != nil {
			return err
		}
		lease := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: v1.NamespaceNodeLease, Labels: map[string]string{benchLabel: benchValue}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(name), LeaseDurationSeconds: ptr.To[int32](leaseSeconds),
				RenewTime: &metav1.MicroTime{Time: time.Now()}},
		}
		if _, err := f.cs.CoordinationV1().Leases(v1.NamespaceNodeLease).Create(ctx, lease, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("lease of node %s: %w", name, err)
		}
		return nil
	})
}

// renew renews every lease and Ready heartbeat once.
func (f *fakeNodes) renew(ctx context.Context) error {
	return parallel(ctx, f.n, 10, func(ctx context.Context, i int) error {
		name := nodeName(i)
		leases := f.cs.CoordinationV1().Leases(v1.NamespaceNodeLease)
		lease, err := leases.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("lease of node %s: %w", name, err)
		}
		lease.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
		if _, err := leases.Update(ctx, lease, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) {
			return fmt.Errorf("renew lease of node %s: %w", name, err)
		} // a conflict is retried on the next beat
		return f.patchStatus(ctx, name, readyStatus(metav1.Now()))
	})
}

// patchStatus writes the node's status with a strategic merge patch
// (conditions merge by type), so the controllers' writes to the Node
// cause no conflict.
func (f *fakeNodes) patchStatus(ctx context.Context, name string, status v1.NodeStatus) error {
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return err
	}
	_, err = f.cs.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("status of node %s: %w", name, err)
	}
	return nil
}

// keepFresh renews every heartbeat until ctx is done; errors are
// logged (a missed beat is retried on the next).
func (f *fakeNodes) keepFresh(ctx context.Context) {
	t := time.NewTicker(heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := f.renew(ctx); err != nil && ctx.Err() == nil {
			logging.FromContext(ctx).Warn("bench node heartbeat", "err", err)
		}
	}
}

// waitSchedulable waits until every bench node is Ready and untainted.
func (f *fakeNodes) waitSchedulable(ctx context.Context, timeout time.Duration) error {
	return poll(ctx, timeout, func() (bool, string, error) {
		list, err := f.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: benchLabel + "=" + benchValue})
		if err != nil {
			return false, "", err
		}
		ok := 0
		for _, n := range list.Items {
			if len(n.Spec.Taints) == 0 && !n.Spec.Unschedulable {
				ok++
			}
		}
		return ok == f.n, fmt.Sprintf("%d of %d bench nodes untainted", ok, f.n), nil
	})
}

// poll calls check every 200 ms until it says done; the timeout
// detects a hang, it is no target.
func poll(ctx context.Context, timeout time.Duration, check func() (bool, string, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	for {
		done, state, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		last = state
		select {
		case <-ctx.Done():
			return fmt.Errorf("not done after %v: %s", timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// createVolumes makes the class and perNode local PVs on each node.
func createVolumes(ctx context.Context, cs kubernetes.Interface, nodes, perNode int) error {
	class := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: className, Labels: map[string]string{benchLabel: benchValue}},
		Provisioner:       "kubernetes.io/no-provisioner",
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
		ReclaimPolicy:     ptr.To(v1.PersistentVolumeReclaimRetain),
	}
	if _, err := cs.StorageV1().StorageClasses().Create(ctx, class, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create class: %w", err)
	}
	return parallel(ctx, nodes*perNode, 20, func(ctx context.Context, i int) error {
		node := nodeName(i / perNode)
		pv := &v1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-pv-%05d", i), Labels: map[string]string{benchLabel: benchValue}},
			Spec: v1.PersistentVolumeSpec{
				Capacity:                      v1.ResourceList{v1.ResourceStorage: resource.MustParse("10Gi")},
				AccessModes:                   []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: v1.PersistentVolumeReclaimRetain,
				StorageClassName:              className,
				PersistentVolumeSource: v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{
					Path: fmt.Sprintf("/mnt/bench/vol-%02d", i%perNode)}},
				NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
					MatchExpressions: []v1.NodeSelectorRequirement{{Key: v1.LabelHostname, Operator: v1.NodeSelectorOpIn, Values: []string{node}}},
				}}}},
			},
		}
		if _, err := cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create PV %s: %w", pv.Name, err)
		}
		return nil
	})
}

// waitAvailable waits until the PV controller has made every bench PV
// Available.
func waitAvailable(ctx context.Context, cs kubernetes.Interface, want int, timeout time.Duration) error {
	return poll(ctx, timeout, func() (bool, string, error) {
		list, err := cs.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{LabelSelector: benchLabel + "=" + benchValue})
		if err != nil {
			return false, "", err
		}
		n := 0
		for _, pv := range list.Items {
			if pv.Status.Phase == v1.VolumeAvailable {
				n++
			}
		}
		return n == want, fmt.Sprintf("%d of %d bench PVs Available", n, want), nil
	})
}
