package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// TestRestartKeepsEveryObject creates 1,000 mixed objects, stops `volplane
// up` with SIGTERM, starts it again on the same data dir, and finds every
// object identical: uid, resourceVersion and every field.
func TestRestartKeepsEveryObject(t *testing.T) {
	p := startUp(t)
	cs := p.Client()
	ctx := context.Background()

	namespaces := []string{"r0", "r1", "r2", "r3", "r4"}
	for _, ns := range namespaces {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// 400 ConfigMaps, 200 Secrets, 150 PersistentVolumes, 150 claims (in
	// classes that never match each other), 50 Services, 45 ServiceAccounts,
	// and the 5 namespaces: 1,000 objects.
	var creates []func() error
	for i := range 400 {
		ns := namespaces[i%5]
		creates = append(creates, func() error {
			_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i), Labels: map[string]string{"i": fmt.Sprint(i)}}, Data: map[string]string{"k": fmt.Sprint(i)}}, metav1.CreateOptions{})
			return err
		})
	}
	for i := range 200 {
		ns := namespaces[i%5]
		creates = append(creates, func() error {
			_, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s-%d", i)}, StringData: map[string]string{"password": fmt.Sprint(i)}}, metav1.CreateOptions{})
			return err
		})
	}
	for i := range 150 {
		creates = append(creates, func() error {
			_, err := cs.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("restart-pv-%d", i)},
				Spec: corev1.PersistentVolumeSpec{
					StorageClassName:              "restart-volumes",
					Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(fmt.Sprintf("%dGi", i+1))},
					AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
					PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: fmt.Sprintf("/tmp/restart-%d", i)}},
				},
			}, metav1.CreateOptions{})
			return err
		})
		ns := namespaces[i%5]
		creates = append(creates, func() error {
			_, err := cs.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &corev1.PersistentVolumeClaim{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c-%d", i)},
				Spec: corev1.PersistentVolumeClaimSpec{
					StorageClassName: ptr.To("restart-claims"),
					AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}, metav1.CreateOptions{})
			return err
		})
	}
	for i := range 50 {
		ns := namespaces[i%5]
		creates = append(creates, func() error {
			_, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d", i)}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
			return err
		})
	}
	for i := range 45 {
		ns := namespaces[i%5]
		creates = append(creates, func() error {
			_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("sa-%d", i)}}, metav1.CreateOptions{})
			return err
		})
	}
	if n := len(creates) + len(namespaces); n != 1000 {
		t.Fatalf("test makes %d objects, want 1000", n)
	}
	runParallel(t, 8, creates)

	// Controllers settle the new objects (PV phases, service account
	// tokens); snapshot once nothing changes any more.
	before := settledSnapshot(t, cs)
	if got := countCreated(before); got != 1000 {
		t.Fatalf("snapshot holds %d of the objects created, want 1000", got)
	}

	took, err := p.Signal(syscall.SIGTERM)
	if err != nil {
		t.Fatalf("volplane up exited with %v after SIGTERM", err)
	}
	t.Logf("stopped %v after SIGTERM", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("volplane up took %v to stop after SIGTERM, the contract is 10s", took)
	}
	p.start()
	t.Logf("warm restart ready in %v", p.WaitReady().Round(time.Millisecond))

	after := snapshot(t, p.Client())
	for key, b := range before {
		a, ok := after[key]
		if !ok {
			t.Errorf("%s lost across restart", key)
			continue
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s changed across restart:\nbefore %s\nafter  %s", key, b, a)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

func runParallel(t *testing.T, workers int, fns []func() error) {
	t.Helper()
	work := make(chan func() error)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for fn := range work {
				if err := fn(); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, fn := range fns {
		work <- fn
	}
	close(work)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

// snapshot maps kind/namespace/name to the object's JSON for the kinds
// the restart test creates.
func snapshot(t *testing.T, cs kubernetes.Interface) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	add := func(kind string, list runtime.Object, err error) {
		if err != nil {
			t.Fatal(err)
		}
		items := reflect.ValueOf(list).Elem().FieldByName("Items")
		for i := range items.Len() {
			obj := items.Index(i).Addr().Interface().(metav1.Object)
			data, err := json.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}
			out[kind+"/"+obj.GetNamespace()+"/"+obj.GetName()] = string(data)
		}
	}
	ns, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	add("namespace", ns, err)
	cms, err := cs.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
	add("configmap", cms, err)
	secrets, err := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	add("secret", secrets, err)
	pvs, err := cs.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	add("pv", pvs, err)
	pvcs, err := cs.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	add("pvc", pvcs, err)
	svcs, err := cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	add("service", svcs, err)
	sas, err := cs.CoreV1().ServiceAccounts("").List(ctx, metav1.ListOptions{})
	add("serviceaccount", sas, err)
	return out
}

// settledSnapshot takes snapshots until two taken 3s apart are equal.
func settledSnapshot(t *testing.T, cs kubernetes.Interface) map[string]string {
	t.Helper()
	prev := snapshot(t, cs)
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		time.Sleep(3 * time.Second)
		cur := snapshot(t, cs)
		if reflect.DeepEqual(prev, cur) {
			return cur
		}
		prev = cur
	}
	t.Fatal("objects still changing after 2m")
	return nil
}

// countCreated counts the test's own objects in a snapshot: each test
// namespace also gets kube-root-ca.crt and a default service account
// from the controllers, which are not the test's.
func countCreated(s map[string]string) int {
	n := 0
	for key := range s {
		parts := strings.SplitN(key, "/", 3)
		kind, ns, name := parts[0], parts[1], parts[2]
		switch {
		case kind == "namespace":
			if len(name) == 2 && name[0] == 'r' {
				n++
			}
		case kind == "pv":
			if strings.HasPrefix(name, "restart-pv-") {
				n++
			}
		case len(ns) == 2 && ns[0] == 'r' && name != "kube-root-ca.crt" && name != "default":
			n++
		}
	}
	return n
}
