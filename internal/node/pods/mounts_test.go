package pods

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"volplane/internal/node/volumemanager"
)

func TestMakeMounts(t *testing.T) {
	bidi, h2c := corev1.MountPropagationBidirectional, corev1.MountPropagationHostToContainer
	env := []envVar{{"POD_NAME", "web-0"}, {"UP", ".."}}
	volumes := map[string]volumemanager.MountedVolume{
		"data": {HostPath: "/var/pods/u/volumes/data"},
		"ro":   {HostPath: "/var/pods/u/volumes/ro", ReadOnly: true},
	}
	tests := []struct {
		name       string
		mounts     []corev1.VolumeMount
		privileged bool
		want       []*runtimeapi.Mount
		wantSub    []string // subPaths asked of the volume manager
		wantErr    string
	}{{
		name:   "plain, readOnly from the mount or the volume",
		mounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}, {Name: "data", MountPath: "/data-ro", ReadOnly: true}, {Name: "ro", MountPath: "/ro"}},
		want: []*runtimeapi.Mount{
			{ContainerPath: "/data", HostPath: "/var/pods/u/volumes/data"},
			{ContainerPath: "/data-ro", HostPath: "/var/pods/u/volumes/data", Readonly: true},
			{ContainerPath: "/ro", HostPath: "/var/pods/u/volumes/ro", Readonly: true},
		},
	}, {
		name:    "subPath through the volume manager",
		mounts:  []corev1.VolumeMount{{Name: "data", MountPath: "/conf", SubPath: "etc/app"}},
		want:    []*runtimeapi.Mount{{ContainerPath: "/conf", HostPath: "/sub/data/app/0/etc/app"}},
		wantSub: []string{"etc/app"},
	}, {
		name:    "subPathExpr expanded from the environment",
		mounts:  []corev1.VolumeMount{{Name: "data", MountPath: "/x"}, {Name: "data", MountPath: "/logs", SubPathExpr: "logs/$(POD_NAME)"}},
		want:    []*runtimeapi.Mount{{ContainerPath: "/x", HostPath: "/var/pods/u/volumes/data"}, {ContainerPath: "/logs", HostPath: "/sub/data/app/1/logs/web-0"}},
		wantSub: []string{"logs/web-0"},
	}, {
		name:    "subPathExpr expanding to .. is refused",
		mounts:  []corev1.VolumeMount{{Name: "data", MountPath: "/up", SubPathExpr: "$(UP)/etc"}},
		wantErr: "must not contain '..'",
	}, {
		name:    "absolute subPath is refused",
		mounts:  []corev1.VolumeMount{{Name: "data", MountPath: "/abs", SubPath: "/etc"}},
		wantErr: "must not be an absolute path",
	}, {
		name:    "unknown volume",
		mounts:  []corev1.VolumeMount{{Name: "nosuch", MountPath: "/n"}},
		wantErr: `cannot find volume "nosuch" to mount into container "app"`,
	}, {
		name:       "propagation",
		mounts:     []corev1.VolumeMount{{Name: "data", MountPath: "/h", MountPropagation: &h2c}, {Name: "data", MountPath: "/b", MountPropagation: &bidi}},
		privileged: true,
		want: []*runtimeapi.Mount{
			{ContainerPath: "/h", HostPath: "/var/pods/u/volumes/data", Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
			{ContainerPath: "/b", HostPath: "/var/pods/u/volumes/data", Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL},
		},
	}, {
		name:    "bidirectional needs privileged",
		mounts:  []corev1.VolumeMount{{Name: "data", MountPath: "/b", MountPropagation: &bidi}},
		wantErr: "only allowed for privileged containers",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod("p", ctr("app"))
			c := &pod.Spec.Containers[0]
			c.VolumeMounts = tt.mounts
			var asked []string
			got, err := makeMounts(context.Background(), mountInput{
				Pod: pod, Container: c, Env: env, Volumes: volumes, Privileged: tt.privileged,
				PrepareSubPath: func(_ context.Context, r volumemanager.SubPathRequest) (string, error) {
					asked = append(asked, r.SubPath)
					return "/sub/" + r.Volume + "/" + r.Container + "/" + string(rune('0'+r.MountIndex)) + "/" + r.SubPath, nil
				},
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d mounts %v, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				if g.ContainerPath != w.ContainerPath || g.HostPath != w.HostPath || g.Readonly != w.Readonly || g.Propagation != w.Propagation {
					t.Errorf("mount %d = %v, want %v", i, g, w)
				}
			}
			if strings.Join(asked, ",") != strings.Join(tt.wantSub, ",") {
				t.Errorf("subPaths asked %v, want %v", asked, tt.wantSub)
			}
		})
	}
}

func TestMakeMountsAddsHostsAndTerminationLog(t *testing.T) {
	pod := testPod("p", ctr("app"))
	got, err := makeMounts(context.Background(), mountInput{Pod: pod, Container: &pod.Spec.Containers[0], EtcHosts: "/pods/u/etc-hosts", TermLog: "/pods/u/containers/app/0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ContainerPath != "/etc/hosts" || got[1].ContainerPath != "/dev/termination-log" || got[1].HostPath != "/pods/u/containers/app/0" {
		t.Errorf("mounts %v", got)
	}
}

func TestMakeDevices(t *testing.T) {
	c := ctr("app")
	c.VolumeDevices = []corev1.VolumeDevice{{Name: "blk", DevicePath: "/dev/xvda"}}
	got, err := makeDevices(&c, map[string]volumemanager.MountedVolume{"blk": {DevicePath: "/dev/loop3"}})
	if err != nil || len(got) != 1 || got[0].HostPath != "/dev/loop3" || got[0].ContainerPath != "/dev/xvda" {
		t.Errorf("devices %v, %v", got, err)
	}
	if _, err := makeDevices(&c, map[string]volumemanager.MountedVolume{"blk": {HostPath: "/x"}}); err == nil {
		t.Error("a filesystem volume mapped as a device")
	}
}

func TestExpand(t *testing.T) {
	lookup := envLookup([]envVar{{"A", "1"}, {"B", "2"}})
	for in, want := range map[string]string{
		"$(A)":        "1",
		"x$(A)y$(B)z": "x1y2z",
		"$$(A)":       "$(A)",
		"$(C)":        "$(C)",
		"$(A":         "$(A",
		"$":           "$",
		"a$b":         "a$b",
	} {
		if got := expand(in, lookup); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSubPathErrorHidesHostPaths: upstream's kubelet logs why a subPath
// could not be prepared and tells the user only which mount failed
// ("Don't pass detailed error back to the user because it could give
// information about host filesystem"); the error reaches the pod's status
// and a Failed event.
func TestSubPathErrorHidesHostPaths(t *testing.T) {
	pod := testPod("p", ctr("app"))
	c := &pod.Spec.Containers[0]
	c.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/x", SubPath: "link"}}
	_, err := makeMounts(context.Background(), mountInput{
		Pod: pod, Container: c,
		Volumes: map[string]volumemanager.MountedVolume{"data": {HostPath: "/var/lib/kubelet/pods/u/volumes/data"}},
		PrepareSubPath: func(context.Context, volumemanager.SubPathRequest) (string, error) {
			return "", errors.New(`subpath "link" not within volume path "/var/lib/kubelet/pods/u/volumes/data"`)
		},
	})
	want := `failed to prepare subPath for volumeMount "data" of container "app"`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}
