package objectcache

import (
	"context"
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestChangedReachesEveryStaleVolume: a volume that already read the new
// version (its SetUp ran for another reason) is not told again, the
// others are, and each only once per version.
func TestChangedReachesEveryStaleVolume(t *testing.T) {
	c := New(fake.NewClientset(), nil)
	var got []string
	c.OnChange(func(v string) { got = append(got, v) })
	k := key{configMaps, "ns", "app"}
	w := &objectWatch{key: k, volumes: map[string]string{"a": "6", "b": "5", "c": absent}}
	c.watches[k] = w
	c.changed(w, "6")
	c.changed(w, "6")
	sort.Strings(got)
	if len(got) != 2 || got[0] != "b" || got[1] != "c" {
		t.Errorf("told %v, want [b c]", got)
	}
	got = nil
	c.changed(w, absent) // deleted
	if len(got) != 3 {
		t.Errorf("deletion told %v, want all three", got)
	}
}

func TestGetErrors(t *testing.T) {
	client := fake.NewClientset()
	client.PrependReactor("get", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.GetAction).GetName() == "forbidden" {
			return true, nil, apierrors.NewForbidden(corev1.Resource("secrets"), "forbidden", nil)
		}
		return false, nil, nil
	})
	// The Node authorizer forbids the list and watch as well as the get.
	client.PrependReactor("list", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.ListAction).GetListRestrictions().Fields.String() == "metadata.name=forbidden" {
			return true, nil, apierrors.NewForbidden(corev1.Resource("secrets"), "forbidden", nil)
		}
		return false, nil, nil
	})
	c := New(client, nil)
	defer func() {
		c.Release("v")
		if c.Watching() != 0 {
			t.Error("watches left after Release")
		}
	}()
	ctx := context.Background()
	_, err := c.Secret(ctx, "v", "ns", "missing")
	if !apierrors.IsNotFound(err) || err.Error() != `secret "missing" not found` {
		t.Errorf("missing secret: %v", err)
	}
	_, err = c.Secret(ctx, "v", "ns", "forbidden")
	if !apierrors.IsForbidden(err) {
		t.Errorf("forbidden secret: %v", err)
	}
	if _, err := client.CoreV1().ConfigMaps("ns").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "ns"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if cm, err := c.ConfigMap(ctx, "v", "ns", "x"); err != nil || cm.Name != "x" {
		t.Errorf("ConfigMap = %v, %v", cm, err)
	}
	if n := c.Watching(); n != 3 {
		t.Errorf("%d watches, want one per object (3)", n)
	}
}
