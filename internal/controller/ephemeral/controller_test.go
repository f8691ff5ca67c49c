package ephemeral

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

func ephemeralPod(deleting bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "pod-uid"},
		Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{
			Ephemeral: &corev1.EphemeralVolumeSource{VolumeClaimTemplate: &corev1.PersistentVolumeClaimTemplate{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"a": "b"}},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}},
		}}}},
	}
	if deleting {
		now := metav1.Now()
		p.DeletionTimestamp = &now
	}
	return p
}

func TestSync(t *testing.T) {
	foreign := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "web-scratch", Namespace: "ns"}}
	for _, tc := range []struct {
		name      string
		pod       *corev1.Pod
		objs      []runtime.Object
		wantClaim bool
		wantOwner bool
		wantErr   bool
		wantEvent string
	}{
		{name: "creates the claim owned by the pod", pod: ephemeralPod(false), wantClaim: true, wantOwner: true},
		{name: "pod being deleted: nothing", pod: ephemeralPod(true)},
		{name: "foreign claim is not adopted", pod: ephemeralPod(false), objs: []runtime.Object{foreign},
			wantClaim: true, wantErr: true,
			wantEvent: "Warning FailedBinding ephemeral volume scratch: PVC ns/web-scratch was not created for pod ns/web (pod is not owner)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset(append([]runtime.Object{tc.pod}, tc.objs...)...)
			factory := informers.NewSharedInformerFactory(client, 0)
			rec := record.NewFakeRecorder(10)
			c, err := New(Config{}, client, factory, rec)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			factory.Start(ctx.Done())
			cache.WaitForCacheSync(ctx.Done(), c.synced...)
			err = c.sync(ctx, "ns/web")
			if (err != nil) != tc.wantErr {
				t.Fatalf("sync error = %v", err)
			}
			claim, err := client.CoreV1().PersistentVolumeClaims("ns").Get(ctx, "web-scratch", metav1.GetOptions{})
			if (err == nil) != tc.wantClaim {
				t.Fatalf("claim: %v", err)
			}
			if tc.wantOwner {
				refs := claim.OwnerReferences
				if len(refs) != 1 || refs[0].UID != "pod-uid" || refs[0].Kind != "Pod" || !*refs[0].Controller || !*refs[0].BlockOwnerDeletion {
					t.Fatalf("owner references %+v", refs)
				}
				if claim.Labels["app"] != "web" || claim.Annotations["a"] != "b" || claim.Spec.Resources.Requests.Storage().String() != "1Gi" {
					t.Fatalf("claim not from the template: %+v", claim)
				}
			}
			select {
			case e := <-rec.Events:
				if e != tc.wantEvent {
					t.Fatalf("event %q, want %q", e, tc.wantEvent)
				}
			default:
				if tc.wantEvent != "" {
					t.Fatalf("no event, want %q", tc.wantEvent)
				}
			}
		})
	}
}
