package agent

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"volplane/internal/node/volumemanager"
)

// fakeInUse is the part of the volume manager the status loop uses: the
// volumes in use, their change channel, and the marks it is given.
type fakeInUse struct {
	volumemanager.Interface
	mu      sync.Mutex
	inUse   []corev1.UniqueVolumeName
	synced  bool
	changed chan struct{}
	marks   [][]corev1.UniqueVolumeName
}

func newFakeInUse() *fakeInUse { return &fakeInUse{synced: true, changed: make(chan struct{})} }

func (f *fakeInUse) StatesSynced() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.synced
}

func (f *fakeInUse) VolumesInUse() []corev1.UniqueVolumeName {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.inUse)
}

func (f *fakeInUse) VolumesInUseChanged() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *fakeInUse) MarkVolumesAsReportedInUse(names []corev1.UniqueVolumeName) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.marks = append(f.marks, slices.Clone(names))
}

func (f *fakeInUse) set(names ...corev1.UniqueVolumeName) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inUse = names
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeInUse) lastMark() ([]corev1.UniqueVolumeName, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.marks) == 0 {
		return nil, 0
	}
	return f.marks[len(f.marks)-1], len(f.marks)
}

func statusAgent(t *testing.T, vols *fakeInUse, onNode ...corev1.UniqueVolumeName) (*Agent, *fake.Clientset) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{VolumesInUse: onNode}}
	cs := fake.NewClientset(node)
	a := &Agent{cfg: Config{NodeName: "n1", RootDir: t.TempDir(), StatusUpdateFrequency: time.Hour},
		heartbeat: cs, volumes: vols, nodeIP: "127.0.0.1"}
	return a, cs
}

// TestUpdateStatusMarksReportedInUse: after a successful write the
// volume manager is told the volumesInUse of the Node the API returned
// (upstream's markVolumesFromNode); a failed write tells it nothing.
// Until the volume manager has reconstructed what was mounted before a
// restart, the Node's list is kept as it was (upstream's
// ReconcilerStatesHasBeenSynced), so the controller detaches nothing
// still mounted.
func TestUpdateStatusMarksReportedInUse(t *testing.T) {
	for _, tc := range []struct {
		name     string
		unsynced bool
		patchErr error
		want     []corev1.UniqueVolumeName
		marks    int
	}{
		{"written", false, nil, []corev1.UniqueVolumeName{"csi/a", "csi/b"}, 1},
		{"write refused", false, errors.New("etcd is down"), nil, 0},
		{"not reconstructed yet: the Node's list is kept", true, nil, []corev1.UniqueVolumeName{"csi/old"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vols := newFakeInUse()
			vols.inUse = []corev1.UniqueVolumeName{"csi/b", "csi/a"}
			vols.synced = !tc.unsynced
			a, cs := statusAgent(t, vols, "csi/old")
			if tc.patchErr != nil {
				cs.PrependReactor("patch", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, tc.patchErr
				})
			}
			got, err := a.updateStatus(context.Background())
			if !errors.Is(err, tc.patchErr) {
				t.Fatalf("updateStatus error %v, want %v", err, tc.patchErr)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("updateStatus returned %v, want %v", got, tc.want)
			}
			mark, n := vols.lastMark()
			if n != tc.marks || !slices.Equal(mark, tc.want) {
				t.Errorf("marks: %d, last %v; want %d, last %v", n, mark, tc.marks, tc.want)
			}
			if tc.patchErr == nil {
				node, err := cs.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
				if err != nil || !slices.Equal(node.Status.VolumesInUse, tc.want) {
					t.Errorf("Node volumesInUse %v (%v), want %v", node.Status.VolumesInUse, err, tc.want)
				}
			}
		})
	}
}

// TestRunStatusWritesNewVolumesInUse: the status loop writes the Node's
// status when the volumes in use change, long before
// StatusUpdateFrequency, and marks them reported in use; a failed write
// is tried again.
func TestRunStatusWritesNewVolumesInUse(t *testing.T) {
	vols := newFakeInUse()
	a, cs := statusAgent(t, vols)
	var failMu sync.Mutex
	failures := 1
	cs.PrependReactor("patch", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		failMu.Lock()
		defer failMu.Unlock()
		if failures > 0 {
			failures--
			return true, nil, errors.New("refused once")
		}
		return false, nil, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.runStatus(ctx, nil) }()
	defer func() { cancel(); <-done }()

	vols.set("csi/new")
	want := []corev1.UniqueVolumeName{"csi/new"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if mark, _ := vols.lastMark(); slices.Equal(mark, want) {
			break
		}
		if time.Now().After(deadline) {
			mark, n := vols.lastMark()
			t.Fatalf("no mark of %v; %d marks, last %v", want, n, mark)
		}
		time.Sleep(10 * time.Millisecond)
	}
	node, err := cs.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
	if err != nil || !slices.Equal(node.Status.VolumesInUse, want) {
		t.Fatalf("Node volumesInUse %v (%v), want %v", node.Status.VolumesInUse, err, want)
	}
}
