package csi

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"volplane/internal/csi/csitest"
)

func TestTokensAndRepublish(t *testing.T) {
	obj := csiDriver(func(s *storagev1.CSIDriverSpec) {
		s.TokenRequests = []storagev1.TokenRequest{{Audience: "vault", ExpirationSeconds: ptr.To[int64](3600)}, {Audience: ""}}
		s.RequiresRepublish = ptr.To(true)
	})
	r := newRig(t, csitest.NodeOptions{}, attachment(true, ""), obj)
	var asked []*authenticationv1.TokenRequest
	exp := metav1.NewTime(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	r.cs.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ca := a.(k8stesting.CreateAction)
		if ca.GetSubresource() != "token" || ca.GetNamespace() != "ns" || ca.(k8stesting.CreateActionImpl).Name != "sa" {
			t.Errorf("unexpected create %v", a)
		}
		tr := ca.GetObject().(*authenticationv1.TokenRequest).DeepCopy()
		asked = append(asked, tr)
		tr.Status.Token = "tok-" + slices.Concat(tr.Spec.Audiences, []string{"api"})[0]
		tr.Status.ExpirationTimestamp = exp
		return true, tr, nil
	})
	s := spec(pv())
	if !r.p.RequiresRemount(s) {
		t.Error("RequiresRemount false for a driver with requiresRepublish")
	}
	if err := r.mount(t, s, nil); err != nil {
		t.Fatal(err)
	}
	if len(asked) != 2 || asked[0].Spec.BoundObjectRef == nil || asked[0].Spec.BoundObjectRef.UID != "uid-1" ||
		asked[0].Spec.BoundObjectRef.Kind != "Pod" || *asked[0].Spec.ExpirationSeconds != 3600 || len(asked[1].Spec.Audiences) != 0 {
		t.Fatalf("token requests %+v", asked)
	}
	var got map[string]serviceAccountToken
	if err := json.Unmarshal([]byte(r.node.LastPublish().GetVolumeContext()[keyTokens]), &got); err != nil {
		t.Fatal(err)
	}
	if got["vault"].Token != "tok-vault" || got[""].Token != "tok-api" || !got["vault"].ExpirationTimestamp.Time.Equal(exp.Time) {
		t.Errorf("tokens in the volume context: %+v", got)
	}
	// The pod is asked to be set up again, which publishes again.
	if uid := <-r.remounts; uid != "uid-1" {
		t.Errorf("remount of pod %s", uid)
	}
}

func TestNoRepublishWithoutRequiresRepublish(t *testing.T) {
	r := newRig(t, csitest.NodeOptions{}, attachment(true, ""))
	if err := r.mount(t, spec(pv()), nil); err != nil {
		t.Fatal(err)
	}
	if r.p.RequiresRemount(spec(pv())) {
		t.Error("RequiresRemount true without a CSIDriver")
	}
	if _, ok := r.node.LastPublish().GetVolumeContext()[keyTokens]; ok {
		t.Error("tokens without tokenRequests")
	}
	r.p.republish()
	select {
	case uid := <-r.remounts:
		t.Errorf("pod %s asked to remount", uid)
	default:
	}
}
