package volumemanager

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"volplane/internal/hostops/fakehost"
	"volplane/internal/node/plugins"
)

// attachPlugin is an attachable plugin whose volumes (inline csi
// sources) never get attached: the Node lists none.
type attachPlugin struct {
	attachable bool
	// exhausted is VerifyExhaustedResource's answer; asked counts calls.
	exhausted bool
	asked     int
}

func (p *attachPlugin) Name() string             { return "test/attach" }
func (p *attachPlugin) Init(*plugins.Host) error { return nil }
func (p *attachPlugin) CanSupport(s *plugins.Spec) bool {
	return s.Volume != nil && s.Volume.CSI != nil
}
func (p *attachPlugin) VolumeName(s *plugins.Spec, _ *corev1.Pod) (string, error) {
	return "test/attach/" + s.Volume.CSI.Driver + "^" + s.Name, nil
}
func (p *attachPlugin) SetUp(context.Context, plugins.SetUpArgs) error { return nil }
func (p *attachPlugin) TearDown(context.Context, string) error         { return nil }
func (p *attachPlugin) Attachable(*plugins.Spec) bool                  { return p.attachable }

// exhaustPlugin adds VerifyExhaustedResource, as the CSI plugin has.
type exhaustPlugin struct{ *attachPlugin }

func (p exhaustPlugin) VerifyExhaustedResource(*plugins.Spec) bool {
	p.asked++
	return p.exhausted
}

func TestWaitForAttachAndMountAttachLimit(t *testing.T) {
	const plain = "unmounted volumes=[data], unattached volumes=[data], failed to process volumes=[]: context deadline exceeded"
	tests := []struct {
		name      string
		plugin    func(*attachPlugin) plugins.Plugin
		exhausted bool
		cancel    bool // the caller cancels instead of timing out
		want      string
		limit     bool
		asked     bool // VerifyExhaustedResource is consulted
	}{
		{"exhausted: the pod is rejected", func(p *attachPlugin) plugins.Plugin { return exhaustPlugin{p} }, true, false,
			"Node has reached its volume attachment limit, rejecting pod. unmounted volumes=[data], unattached volumes=[data], failed to process volumes=[]: context deadline exceeded", true, true},
		{"not exhausted", func(p *attachPlugin) plugins.Plugin { return exhaustPlugin{p} }, false, false, plain, false, true},
		{"plugin cannot tell", func(p *attachPlugin) plugins.Plugin { return p }, true, false, plain, false, false},
		{"wait cancelled, not timed out", func(p *attachPlugin) plugins.Plugin { return exhaustPlugin{p} }, true, true,
			"unmounted volumes=[data], unattached volumes=[data], failed to process volumes=[]: context canceled", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ap := &attachPlugin{attachable: true, exhausted: tc.exhausted}
			vol := corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "d.example.com"}}}
			pod := testPod("p", "uid-1", vol)
			h := start(t, t.TempDir(), fakehost.New(), newFakePods(pod), []plugins.Plugin{tc.plugin(ap)})
			// The error names the volume unattached only once the
			// populator has put it in the desired state; wait for that
			// first, so the short deadline below bounds a wait whose
			// outcome is fixed (never attached) and not the populator's
			// speed on a loaded machine.
			waitFor(t, func() bool { return len(h.m.desired.PodVolumes(pod.UID)) > 0 })
			ctx, cancel := contextWithTimeout(t, 300)
			defer cancel()
			if tc.cancel {
				var c2 context.CancelFunc
				ctx, c2 = context.WithCancel(t.Context())
				c2()
			}
			err := h.m.WaitForAttachAndMount(ctx, pod)
			if err == nil {
				t.Fatal("WaitForAttachAndMount = nil for a volume never attached")
			}
			if err.Error() != tc.want {
				t.Errorf("error = %q\nwant    %q", err, tc.want)
			}
			var limit *VolumeAttachLimitExceededError
			if got := errors.As(err, &limit); got != tc.limit {
				t.Errorf("errors.As(VolumeAttachLimitExceededError) = %v, want %v", got, tc.limit)
			}
			if got := ap.asked > 0; got != tc.asked {
				t.Errorf("VerifyExhaustedResource asked = %v, want %v", got, tc.asked)
			}
			if !tc.cancel && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
			}
		})
	}
}
