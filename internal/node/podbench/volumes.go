package podbench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Names of the objects every volume pod shares.
const (
	benchConfigMap = "bench-config"
	benchSecret    = "bench-secret"
	updatedConfig  = "bench-updated"
	watcherPod     = "config-watcher"
)

// volumeSet makes the volume pods: each with its own claim, pre-bound to
// a hostPath PV of its own under the data dir, plus a configMap, a
// secret, a projected service-account token and an emptyDir.
type volumeSet struct {
	cs      kubernetes.Interface
	dataDir string
}

// setUp creates the configMap and the secret the pods share.
func (s *volumeSet) setUp(ctx context.Context) error {
	if _, err := s.cs.CoreV1().ConfigMaps(namespace).Create(ctx, &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: benchConfigMap}, Data: map[string]string{"k": "v"},
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create configMap: %w", err)
	}
	if _, err := s.cs.CoreV1().Secrets(namespace).Create(ctx, &v1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: benchSecret}, StringData: map[string]string{"k": "v"},
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create secret: %w", err)
	}
	return nil
}

// claim creates the PV and the claim pre-bound to each other for pod
// name; both are named after it.
func (s *volumeSet) claim(ctx context.Context, name string) error {
	size := resource.MustParse("1Mi")
	dirType := v1.HostPathDirectoryOrCreate
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{benchLabel: "pods"}},
		Spec: v1.PersistentVolumeSpec{
			Capacity:                      v1.ResourceList{v1.ResourceStorage: size},
			AccessModes:                   []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: v1.PersistentVolumeReclaimRetain,
			ClaimRef:                      &v1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: namespace, Name: name},
			PersistentVolumeSource: v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{
				Path: filepath.Join(s.dataDir, "bench-pvs", name), Type: &dirType,
			}},
		},
	}
	if _, err := s.cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create PV %s: %w", name, err)
	}
	empty := ""
	pvc := &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{benchLabel: "pods"}},
		Spec: v1.PersistentVolumeClaimSpec{
			AccessModes:      []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			Resources:        v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: size}},
			StorageClassName: &empty,
			VolumeName:       name,
		},
	}
	if _, err := s.cs.CoreV1().PersistentVolumeClaims(namespace).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create claim %s: %w", name, err)
	}
	return nil
}

// waitBound waits until the PV controller has bound the claims, so that
// a pod's time is its own and not the binding's: a pod whose pre-bound
// claim is not Bound yet is unschedulable ("pod has unbound immediate
// PersistentVolumeClaims") and retried after the scheduler's backoff.
// Storage benchmarks upstream (clusterloader2) bind their volumes before
// the pods come, too.
func (s *volumeSet) waitBound(ctx context.Context, names []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, n := range names {
		for {
			pvc, err := s.cs.CoreV1().PersistentVolumeClaims(namespace).Get(ctx, n, metav1.GetOptions{})
			if err == nil && pvc.Status.Phase == v1.ClaimBound {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("claim %s not Bound: %w", n, errors.Join(err, ctx.Err()))
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// pod is a volume pod using the claim of its own name.
func (s *volumeSet) pod(name string) *v1.Pod {
	p := benchPod(name)
	expiry := int64(3600)
	p.Spec.Volumes = []v1.Volume{
		{Name: "data", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: name}}},
		{Name: "config", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: benchConfigMap}}}},
		{Name: "secret", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: benchSecret}}},
		{Name: "token", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: &expiry}},
		}}}},
		{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
	}
	for _, v := range p.Spec.Volumes {
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, v1.VolumeMount{Name: v.Name, MountPath: "/" + v.Name})
	}
	return p
}

// release deletes the claims and PVs of the pods names (after the pods
// are gone).
func (s *volumeSet) release(ctx context.Context, names []string) error {
	var errs []error
	for _, n := range names {
		if err := s.cs.CoreV1().PersistentVolumeClaims(namespace).Delete(ctx, n, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
		if err := s.cs.CoreV1().PersistentVolumes().Delete(ctx, n, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// measureVolumes times volume pods as measure times bare ones: Lone one
// after another, then Pods at once and their teardown.
func measureVolumes(ctx context.Context, cs kubernetes.Interface, tr *Marker, cfg Config, dataDir string, res *Result) error {
	s := &volumeSet{cs: cs, dataDir: dataDir}
	if err := s.setUp(ctx); err != nil {
		return err
	}
	for i := range cfg.Lone {
		name := "vol-lone-" + strconv.Itoa(i)
		if err := s.claim(ctx, name); err != nil {
			return err
		}
		if err := s.waitBound(ctx, []string{name}, cfg.Timeout); err != nil {
			return err
		}
		d, err := createAndWait(ctx, cs, tr, s.pod(name), cfg.Timeout)
		if err != nil {
			return err
		}
		res.VolLone = append(res.VolLone, d)
		if _, err := deleteAndWait(ctx, cs, tr, []string{name}, cfg.Timeout); err != nil {
			return err
		}
		if err := s.release(ctx, []string{name}); err != nil {
			return err
		}
	}
	names := make([]string, cfg.Pods)
	for i := range names {
		names[i] = "vol-burst-" + strconv.Itoa(i)
		if err := s.claim(ctx, names[i]); err != nil {
			return err
		}
	}
	if err := s.waitBound(ctx, names, cfg.Timeout); err != nil {
		return err
	}
	res.VolBurst = make([]time.Duration, cfg.Pods)
	errs := make([]error, cfg.Pods)
	meter, err := StartCost(ctx, cs)
	if err != nil {
		return err
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { res.VolBurst[i], errs[i] = createAndWait(ctx, cs, tr, s.pod(name), cfg.Timeout) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, name := range names {
		res.VolAllUp = max(res.VolAllUp, tr.Reached(name).Sub(start))
	}
	if res.VolBurstCost, err = meter.Stop(ctx, cs); err != nil {
		return err
	}
	if res.VolTeardown, err = deleteAndWait(ctx, cs, tr, names, cfg.Timeout); err != nil {
		return err
	}
	return s.release(ctx, names)
}

// measureConfigUpdates updates a configMap Updates times, each time
// waiting until the file of a running pod's configMap volume shows the
// new value (read on the host, in the pod's volume directory), and
// returns each delay.
func measureConfigUpdates(ctx context.Context, cs kubernetes.Interface, tr *Marker, cfg Config, dataDir string) ([]time.Duration, error) {
	cms := cs.CoreV1().ConfigMaps(namespace)
	if _, err := cms.Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: updatedConfig}, Data: map[string]string{"n": "0"}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create configMap: %w", err)
	}
	p := benchPod(watcherPod)
	p.Spec.Volumes = []v1.Volume{{Name: "config", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: updatedConfig}}}}}
	p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "config", MountPath: "/config"}}
	if _, err := createAndWait(ctx, cs, tr, p, cfg.Timeout); err != nil {
		return nil, err
	}
	created, err := cs.CoreV1().Pods(namespace).Get(ctx, watcherPod, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	file := filepath.Join(dataDir, "kubelet", "pods", string(created.UID), "volumes", "kubernetes.io~configmap", "config", "n")
	var delays []time.Duration
	for i := 1; i <= cfg.Updates; i++ {
		want := strconv.Itoa(i)
		start := time.Now()
		if _, err := cms.Update(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: updatedConfig}, Data: map[string]string{"n": want}}, metav1.UpdateOptions{}); err != nil {
			return nil, fmt.Errorf("update configMap: %w", err)
		}
		for {
			if b, err := os.ReadFile(file); err == nil && string(b) == want {
				break
			}
			if time.Since(start) > cfg.Timeout {
				return nil, fmt.Errorf("update %d not in the pod's volume after %v", i, cfg.Timeout)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
		delays = append(delays, time.Since(start))
	}
	_, err = deleteAndWait(ctx, cs, tr, []string{watcherPod}, cfg.Timeout)
	return delays, err
}
