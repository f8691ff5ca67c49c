package bootstrap

import (
	"context"
	"reflect"
	"testing"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

func TestEnsureBuiltinDriver(t *testing.T) {
	withSpec := func(f func(*storagev1.CSIDriverSpec)) *storagev1.CSIDriver {
		d := BuiltinDriver()
		d.UID = "old"
		f(&d.Spec)
		return d
	}
	userTokens := []storagev1.TokenRequest{{Audience: "vault"}}
	for _, tc := range []struct {
		name     string
		existing []runtime.Object
		// writes are the verbs of the writes EnsureBuiltinDriver makes.
		writes []string
		// keepTokens: a field the driver does not own survives.
		keepTokens bool
	}{
		{"missing: created", nil, []string{"create"}, false},
		{"as wanted: untouched", []runtime.Object{withSpec(func(*storagev1.CSIDriverSpec) {})}, nil, false},
		{"mutable drift: updated, other fields kept", []runtime.Object{withSpec(func(s *storagev1.CSIDriverSpec) {
			s.PodInfoOnMount = ptr.To(false)
			s.FSGroupPolicy = ptr.To(storagev1.NoneFSGroupPolicy)
			s.StorageCapacity = nil
			s.TokenRequests = userTokens
		})}, []string{"update"}, true},
		{"immutable drift: recreated", []runtime.Object{withSpec(func(s *storagev1.CSIDriverSpec) {
			s.AttachRequired = ptr.To(false)
		})}, []string{"delete", "create"}, false},
		{"lifecycle modes drift (an earlier volplane's Persistent only): recreated", []runtime.Object{withSpec(func(s *storagev1.CSIDriverSpec) {
			s.VolumeLifecycleModes = []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent}
		})}, []string{"delete", "create"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset(tc.existing...)
			ctx := context.Background()
			if err := EnsureBuiltinDriver(ctx, cs); err != nil {
				t.Fatal(err)
			}
			var writes []string
			for _, a := range cs.Actions() {
				if a.GetVerb() != "get" {
					writes = append(writes, a.GetVerb())
				}
				if d, ok := a.(k8stesting.DeleteAction); ok {
					if p := d.GetDeleteOptions().Preconditions; p == nil || p.UID == nil || *p.UID != "old" {
						t.Errorf("delete without the old object's UID as precondition: %+v", p)
					}
				}
			}
			if !reflect.DeepEqual(writes, tc.writes) {
				t.Errorf("writes %v, want %v", writes, tc.writes)
			}
			got, err := cs.StorageV1().CSIDrivers().Get(ctx, BuiltinDriver().Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := BuiltinDriver().Spec
			if tc.keepTokens {
				want.TokenRequests = userTokens
			}
			if !reflect.DeepEqual(got.Spec, want) {
				t.Errorf("spec %+v, want %+v", got.Spec, want)
			}
			// A second run changes nothing.
			cs.ClearActions()
			if err := EnsureBuiltinDriver(ctx, cs); err != nil {
				t.Fatal(err)
			}
			for _, a := range cs.Actions() {
				if a.GetVerb() != "get" {
					t.Errorf("second run wrote: %v", a)
				}
			}
		})
	}
}
