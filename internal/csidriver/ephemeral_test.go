package csidriver

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"volplane/internal/csidriver/state"
	"volplane/internal/hostops/fakehost"
)

func ephemeralReq(id, target string, attrs map[string]string) *csi.NodePublishVolumeRequest {
	ctx := map[string]string{ephemeralKey: "true", "csi.storage.k8s.io/pod.name": "web"}
	for k, v := range attrs {
		ctx[k] = v
	}
	return &csi.NodePublishVolumeRequest{VolumeId: id, TargetPath: target, VolumeCapability: mountCap(snw), VolumeContext: ctx}
}

func TestEphemeralSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"", DefaultEphemeralSize, true},
		{"10Mi", 10 * mib, true},
		{"1G", roundUp(1e9, allocUnit), true},
		{"4096", 4096, true},
		{"1", allocUnit, true},
		{"0", 0, false},
		{"-1Mi", 0, false},
		{"1.5Gi", 0, false},
		{"lots", 0, false},
		{"99999999999Ti", 0, false},
	} {
		got, err := ephemeralSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ephemeralSize(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestEphemeralLifecycle(t *testing.T) {
	d, h := fakeDriver(t)
	ctx := context.Background()
	dir := t.TempDir()
	target := filepath.Join(dir, "pod", "mount")
	id := "csi-0123abcd"
	req := ephemeralReq(id, target, map[string]string{ParamSize: "8Mi"})
	for i := 0; i < 2; i++ { // the second call finds everything done
		if _, err := d.NodePublishVolume(ctx, req); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	v, err := d.store.GetVolume(id)
	if err != nil || v.Phase != state.Ready || v.CapacityBytes != 8*mib || !isEphemeral(&v) || len(v.Targets) != 1 {
		t.Fatalf("record %+v, %v", v, err)
	}
	if ok, _ := h.IsMountPoint(target); !ok {
		t.Fatal("target not mounted")
	}
	if _, err := os.Stat(d.pool.DirPath(id)); err != nil {
		t.Fatalf("volume directory: %v", err)
	}
	// Another size for the same handle is another volume.
	_, err = d.NodePublishVolume(ctx, ephemeralReq(id, target, map[string]string{ParamSize: "9Mi"}))
	wantCode(t, err, codes.AlreadyExists)
	// So is a repeat at the target with other arguments (the spec's rule
	// for every publication).
	ro := ephemeralReq(id, target, map[string]string{ParamSize: "8Mi"})
	ro.Readonly = true
	_, err = d.NodePublishVolume(ctx, ro)
	wantCode(t, err, codes.AlreadyExists)

	for i := 0; i < 2; i++ {
		_, err := d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target})
		if i == 0 && err != nil {
			t.Fatal(err)
		}
		if i == 1 { // deleted: the driver no longer knows it
			wantCode(t, err, codes.NotFound)
		}
	}
	if ok, _ := h.IsMountPoint(target); ok {
		t.Error("target still mounted")
	}
	if _, err := d.store.GetVolume(id); err == nil {
		t.Error("record left after unpublish")
	}
	if _, err := os.Stat(d.pool.DirPath(id)); !os.IsNotExist(err) {
		t.Errorf("volume directory left: %v", err)
	}
}

// A driver that crashed after recording the volume, before mounting it:
// an unpublish (the CO's teardown) still deletes it, and a publish
// finishes it.
func TestEphemeralCrashBeforeMount(t *testing.T) {
	for _, then := range []string{"unpublish", "publish"} {
		t.Run(then, func(t *testing.T) {
			d, h := fakeDriver(t)
			ctx := context.Background()
			target := filepath.Join(t.TempDir(), "mount")
			id := "csi-crash"
			v := state.Volume{ID: id, Name: id, Kind: state.KindDir, Phase: state.Creating, CapacityBytes: DefaultEphemeralSize,
				Parameters: map[string]string{ephemeralKey: "true"}}
			if err := d.store.PutVolume(v); err != nil {
				t.Fatal(err)
			}
			if then == "publish" {
				if _, err := d.NodePublishVolume(ctx, ephemeralReq(id, target, nil)); err != nil {
					t.Fatal(err)
				}
				if ok, _ := h.IsMountPoint(target); !ok {
					t.Fatal("target not mounted")
				}
				return
			}
			if _, err := d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target}); err != nil {
				t.Fatal(err)
			}
			if _, err := d.store.GetVolume(id); err == nil {
				t.Error("record left")
			}
		})
	}
}

func TestEphemeralBadRequests(t *testing.T) {
	d, _ := fakeDriver(t)
	ctx := context.Background()
	target := filepath.Join(t.TempDir(), "mount")
	persistent := mustCreate(t, d, createReq("p", mib, nil)).GetVolumeId()
	for name, req := range map[string]*csi.NodePublishVolumeRequest{
		"bad id":          ephemeralReq("../x", target, nil),
		"unknown attr":    ephemeralReq("csi-a", target, map[string]string{"type": "block"}),
		"bad size":        ephemeralReq("csi-a", target, map[string]string{ParamSize: "big"}),
		"block":           {VolumeId: "csi-a", TargetPath: target, VolumeCapability: blockCap(snw), VolumeContext: map[string]string{ephemeralKey: "true"}},
		"staged":          {VolumeId: "csi-a", TargetPath: target, StagingTargetPath: "/s", VolumeCapability: mountCap(snw), VolumeContext: map[string]string{ephemeralKey: "true"}},
		"persistent's id": ephemeralReq(persistent, target, nil),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := d.NodePublishVolume(ctx, req)
			if err == nil {
				t.Fatal("accepted")
			}
			if c := status.Code(err); c != codes.InvalidArgument && c != codes.AlreadyExists {
				t.Errorf("code %s: %v", c, err)
			}
		})
	}
	if n := len(d.store.ListVolumes()); n != 1 {
		t.Errorf("%d volumes recorded, want only the persistent one", n)
	}
}

// A driver restarted while an ephemeral volume is published: the CO's
// later unpublish still unmounts and deletes it.
func TestEphemeralAcrossRestart(t *testing.T) {
	h := fakehost.New()
	dir := t.TempDir()
	d := newFakeDriver(t, dir, h)
	ctx := context.Background()
	target := filepath.Join(t.TempDir(), "mount")
	id := "csi-restart"
	if _, err := d.NodePublishVolume(ctx, ephemeralReq(id, target, nil)); err != nil {
		t.Fatal(err)
	}
	d2 := newFakeDriver(t, dir, h) // the restart
	if v, err := d2.store.GetVolume(id); err != nil {
		t.Fatal(err)
	} else if _, ok := v.Targets[target]; !ok {
		t.Fatalf("the restart forgot the publication at %s, whose mount is still there", target)
	}
	// Publishing again (the CO unsure after its own restart) is fine.
	if _, err := d2.NodePublishVolume(ctx, ephemeralReq(id, target, nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := d2.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := h.IsMountPoint(target); ok {
		t.Error("target still mounted")
	}
	if _, err := d2.store.GetVolume(id); err == nil {
		t.Error("record left")
	}
	if _, err := os.Stat(d2.pool.DirPath(id)); !os.IsNotExist(err) {
		t.Errorf("volume directory left: %v", err)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("target the driver created is left: %v", err)
	}
}
