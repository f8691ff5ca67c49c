package provbench

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"volplane/internal/node/podbench"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"defaults filled", Config{Executable: "/bin/volplane", Claims: 1, Pods: 1}, ""},
		{"no executable", Config{Claims: 1, Pods: 1}, "no executable"},
		{"zero claims", Config{Executable: "x", Pods: 1}, "--claims"},
		{"negative pods", Config{Executable: "x", Claims: 1, Pods: -1}, "--pods"},
		{"bad pool size", Config{Executable: "x", Claims: 1, Pods: 1, PoolSize: "lots"}, "--pool-size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			err := cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Runc != "runc" || cfg.Timeout != 10*time.Minute {
					t.Fatalf("defaults not filled: %+v", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
}

func TestReached(t *testing.T) {
	ready := v1.ContainerStatus{Ready: true}
	pod := func(phase v1.PodPhase, st ...v1.ContainerStatus) *v1.Pod {
		return &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p"},
			Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c"}}},
			Status:     v1.PodStatus{Phase: phase, ContainerStatuses: st},
		}
	}
	claim := func(phase v1.PersistentVolumeClaimPhase) *v1.PersistentVolumeClaim {
		return &v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Status: v1.PersistentVolumeClaimStatus{Phase: phase}}
	}
	tests := []struct {
		name    string
		reached func(runtime.Object) (string, bool)
		obj     runtime.Object
		want    bool
	}{
		{"claim Bound", claimBound, claim(v1.ClaimBound), true},
		{"claim Pending", claimBound, claim(v1.ClaimPending), false},
		{"a pod is no claim", claimBound, pod(v1.PodRunning, ready), false},
		{"pod Running and ready", podbench.PodRunningReady, pod(v1.PodRunning, ready), true},
		{"pod Running, not ready", podbench.PodRunningReady, pod(v1.PodRunning, v1.ContainerStatus{}), false},
		{"pod Running, no status yet", podbench.PodRunningReady, pod(v1.PodRunning), false},
		{"pod Pending", podbench.PodRunningReady, pod(v1.PodPending, ready), false},
		{"a claim is no pod", podbench.PodRunningReady, claim(v1.ClaimBound), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, got := tt.reached(tt.obj); got != tt.want {
				t.Fatalf("reached = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRowsGoal(t *testing.T) {
	tests := []struct {
		name  string
		done  bool
		n     int
		all   time.Duration
		want  string
		value string
	}{
		{"100 in 1 s is met", true, 100, time.Second, "met", "100.0 /s"},
		{"500 in 10 s is not met", true, 500, 10 * time.Second, "not met", "50.0 /s"},
		{"nothing bound in no time is not met", true, 0, 0, "not met", "0.0 /s"},
		{"a failed phase is not measured", false, 500, time.Second, "not measured", "not measured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Result{Claims: tt.n, ClaimBound: make([]time.Duration, tt.n), ClaimsAll: tt.all, ClaimsDone: tt.done}
			rows := r.Rows()
			if got := rows[0].Value; got != tt.value {
				t.Errorf("rate = %q, want %q", got, tt.value)
			}
			last := rows[len(rows)-1]
			if !strings.HasPrefix(last.Figure, "goal:") || last.Value != tt.want {
				t.Errorf("goal row = %+v, want verdict %q", last, tt.want)
			}
		})
	}
}

func TestRowsUnfinishedPhases(t *testing.T) {
	r := Result{Claims: 5, Pods: 2, ClaimsDone: true, ClaimBound: make([]time.Duration, 5), ClaimsAll: time.Second}
	var notMeasured []string
	for _, row := range r.Rows() {
		if row.Value == "not measured" {
			notMeasured = append(notMeasured, row.Figure)
		}
	}
	if len(notMeasured) != 2 || !strings.Contains(notMeasured[0], "pods") || !strings.Contains(notMeasured[1], "teardown") {
		t.Fatalf("rows not measured = %q, want the pods and the teardown", notMeasured)
	}
}

func TestRetry(t *testing.T) {
	gr := schema.GroupResource{Resource: "persistentvolumeclaims"}
	tests := []struct {
		name    string
		answers []error
		calls   int
		wantErr bool
	}{
		{"success", []error{nil}, 1, false},
		{"etcd timeout then success", []error{apierrors.NewInternalError(errors.New("etcdserver: request timed out")), nil}, 2, false},
		{"server timeout then already exists", []error{apierrors.NewServerTimeout(gr, "create", 1), apierrors.NewAlreadyExists(gr, "c")}, 2, false},
		{"not found is done", []error{apierrors.NewNotFound(gr, "c")}, 1, false},
		{"forbidden is final", []error{apierrors.NewForbidden(gr, "c", errors.New("no"))}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := retry(context.Background(), func() error {
				calls++
				return tt.answers[calls-1]
			})
			if (err != nil) != tt.wantErr || calls != tt.calls {
				t.Fatalf("err = %v after %d calls, want error %v after %d", err, calls, tt.wantErr, tt.calls)
			}
		})
	}
}

func TestPoolVolumes(t *testing.T) {
	dir := t.TempDir()
	if n, err := poolVolumes(filepath.Join(dir, "missing")); err != nil || n != 0 {
		t.Fatalf("missing pool: %d, %v", n, err)
	}
	for _, p := range []string{"volumes/pvc-a", "volumes/pvc-b", "blocks"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "blocks", "pvc-c.img"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := poolVolumes(dir); err != nil || n != 3 {
		t.Fatalf("poolVolumes = %d, %v, want 3", n, err)
	}
}
