package reconciler

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"

	"volplane/internal/node/plugins"
	"volplane/internal/node/volumemanager/cache"
)

// TestRetryNow: RetryNow ends the backoff of the volumes it selects, and
// only theirs, without the clock moving.
func TestRetryNow(t *testing.T) {
	root := t.TempDir()
	fp := &fakePlugin{setUpErr: errors.New("driver name x not found in the list of registered CSI drivers")}
	desired, actual := cache.NewDesired(), cache.NewActual()
	now := time.Unix(1000, 0)
	cfg := testConfig(root, desired, actual)
	cfg.Recorder, cfg.Now = record.NewFakeRecorder(100), func() time.Time { return now }
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	plain := struct{ plugins.Plugin }{fp}
	for _, uid := range []types.UID{"a", "b"} {
		desired.AddPodVolume(cache.VolumeToMount{VolumeName: "fake/" + string(uid), OuterName: "v", Plugin: plain,
			Spec: &plugins.Spec{Name: "v"}, Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: uid}}})
	}
	step := func() { r.Reconcile(context.Background()); r.Wait() }
	setUps := func(uid string) int { return strings.Count(fp.Calls(), "SetUp "+uid+" ") }
	step()
	step()
	if setUps("a") != 1 || setUps("b") != 1 {
		t.Fatalf("calls %q: want one SetUp each, then backoff", fp.Calls())
	}
	r.RetryNow(func(volume string) bool { return volume == "fake/a" })
	step()
	if setUps("a") != 2 || setUps("b") != 1 {
		t.Fatalf("calls %q: want fake/a retried at once and fake/b still backing off", fp.Calls())
	}
}
