package csidriver

import (
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"volplane/internal/csidriver/state"
)

func TestVolumeSize(t *testing.T) {
	const def = gib
	for _, tc := range []struct {
		name     string
		req, lim int64
		min      int64
		want     int64
		code     codes.Code
	}{
		{name: "exact", req: 10 * mib, min: allocUnit, want: 10 * mib},
		{name: "rounded up to 4 KiB", req: 10*mib + 1, min: allocUnit, want: 10*mib + allocUnit},
		{name: "no size asks for the default", min: allocUnit, want: def},
		{name: "default bounded by the limit", lim: 100 * mib, min: allocUnit, want: 100 * mib},
		{name: "raised to the minimum", req: 10 * mib, min: 300 * mib, want: 300 * mib},
		{name: "minimum above the limit", req: 10 * mib, lim: 20 * mib, min: 300 * mib, code: codes.OutOfRange},
		{name: "limit equal to the requirement", req: 10 * mib, lim: 10 * mib, min: allocUnit, want: 10 * mib},
		{name: "rounding within the limit", req: 10*mib + 1, lim: 10*mib + 8192, min: allocUnit, want: 10*mib + allocUnit},
		{name: "default rounded down to the limit", lim: 10*mib + 100, min: allocUnit, want: 10 * mib},
		{name: "no multiple of 4 KiB in range", req: 10*mib + 1, lim: 10*mib + 2, min: allocUnit, code: codes.OutOfRange},
		{name: "required above limit", req: 20 * mib, lim: 10 * mib, min: allocUnit, code: codes.InvalidArgument},
		{name: "negative", req: -1, min: allocUnit, code: codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := volumeSize(&csi.CapacityRange{RequiredBytes: tc.req, LimitBytes: tc.lim}, def, tc.min)
			if code := status.Code(err); code != tc.code {
				t.Fatalf("code %s (%v), want %s", code, err, tc.code)
			}
			if err == nil && got != tc.want {
				t.Fatalf("size %d, want %d", got, tc.want)
			}
		})
	}
	if got, err := volumeSize(nil, def, allocUnit); err != nil || got != def {
		t.Fatalf("nil range: %d, %v", got, err)
	}
}

func TestMinSize(t *testing.T) {
	if minSize(state.KindBlock, "xfs") != 300*mib {
		t.Error("xfs volumes must be at least 300 MiB: mkfs.xfs refuses smaller devices")
	}
	if minSize(state.KindBlock, "ext4") != mib || minSize(state.KindBlock, "") != mib {
		t.Error("ext4 and raw block volumes start at 1 MiB")
	}
	if minSize(state.KindDir, "") != allocUnit {
		t.Error("directory volumes start at one allocation unit")
	}
}

func TestParseParameters(t *testing.T) {
	mount := mountCap(snw)
	block := blockCap(snw)
	xfsMount := mountCap(snw)
	xfsMount.GetMount().FsType = "xfs"
	for _, tc := range []struct {
		name   string
		params map[string]string
		caps   []*csi.VolumeCapability
		kind   state.Kind
		fs     string
		fail   bool
	}{
		{name: "default is a directory", caps: []*csi.VolumeCapability{mount}, kind: state.KindDir},
		{name: "raw block implies block", caps: []*csi.VolumeCapability{block}, kind: state.KindBlock},
		{name: "fsType implies block", params: map[string]string{ParamFSType: "xfs"}, caps: []*csi.VolumeCapability{mount}, kind: state.KindBlock, fs: "xfs"},
		{name: "fs_type of the capability", params: map[string]string{ParamType: "block"}, caps: []*csi.VolumeCapability{xfsMount}, kind: state.KindBlock, fs: "xfs"},
		{name: "fs_type ignored for directories", caps: []*csi.VolumeCapability{xfsMount}, kind: state.KindDir},
		{name: "kubernetes parameters ignored", params: map[string]string{"csi.storage.k8s.io/pvc/name": "x"}, caps: []*csi.VolumeCapability{mount}, kind: state.KindDir},
		{name: "unknown parameter", params: map[string]string{"color": "blue"}, caps: []*csi.VolumeCapability{mount}, fail: true},
		{name: "unknown type", params: map[string]string{ParamType: "lvm"}, caps: []*csi.VolumeCapability{mount}, fail: true},
		{name: "unknown fsType", params: map[string]string{ParamFSType: "ntfs"}, caps: []*csi.VolumeCapability{mount}, fail: true},
		{name: "dir as raw block", params: map[string]string{ParamType: "dir"}, caps: []*csi.VolumeCapability{block}, fail: true},
		{name: "fsType on a dir", params: map[string]string{ParamType: "dir", ParamFSType: "ext4"}, caps: []*csi.VolumeCapability{mount}, fail: true},
		{name: "fs_type contradicts fsType", params: map[string]string{ParamFSType: "ext4"}, caps: []*csi.VolumeCapability{xfsMount}, fail: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseParameters(tc.params, tc.caps)
			if tc.fail {
				if status.Code(err) != codes.InvalidArgument {
					t.Fatalf("want InvalidArgument, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.kind != tc.kind || p.fsType != tc.fs {
				t.Fatalf("got %+v, want kind %s fs %q", p, tc.kind, tc.fs)
			}
		})
	}
}

func TestCheckCapability(t *testing.T) {
	withFlags := func(flags ...string) *csi.VolumeCapability {
		c := mountCap(snw)
		c.GetMount().MountFlags = flags
		return c
	}
	for _, tc := range []struct {
		name string
		cap  *csi.VolumeCapability
		ok   bool
	}{
		{"mount", mountCap(snw), true},
		{"block", blockCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER), true},
		{"nil", nil, false},
		{"no access mode", &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}}, false},
		{"no access type", &csi.VolumeCapability{AccessMode: &csi.VolumeCapability_AccessMode{Mode: snw}}, false},
		{"unknown mode", mountCap(csi.VolumeCapability_AccessMode_UNKNOWN), false},
		{"multi node", mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER), false},
		{"generic flags", withFlags("noexec", "ro"), true},
		{"bind flag chosen by the driver", withFlags("bind"), false},
		{"mount group", &csi.VolumeCapability{AccessMode: &csi.VolumeCapability_AccessMode{Mode: snw},
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{VolumeMountGroup: "1000"}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkCapability(tc.cap)
			if tc.ok != (err == nil) {
				t.Fatalf("checkCapability: %v, want ok=%v", err, tc.ok)
			}
			if err != nil && status.Code(err) != codes.InvalidArgument {
				t.Fatalf("code %s, want InvalidArgument", status.Code(err))
			}
		})
	}
}

func TestMutableParameters(t *testing.T) {
	if err := checkMutableParameters(map[string]string{MutableCompression: "zstd"}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []map[string]string{{MutableCompression: "gzip"}, {"XXX_FakeKey": "x"}} {
		if status.Code(checkMutableParameters(m)) != codes.InvalidArgument {
			t.Errorf("%v accepted", m)
		}
	}
}

func TestTopologyAccepts(t *testing.T) {
	topo := func(seg map[string]string) *csi.Topology { return &csi.Topology{Segments: seg} }
	if !topologyAccepts(nil, "n") {
		t.Error("no requirement must accept")
	}
	if !topologyAccepts(&csi.TopologyRequirement{Requisite: []*csi.Topology{topo(map[string]string{TopologyKey: "x"}), topo(map[string]string{TopologyKey: "n"})}}, "n") {
		t.Error("a requisite naming this node must accept")
	}
	if topologyAccepts(&csi.TopologyRequirement{Requisite: []*csi.Topology{topo(map[string]string{"zone": "a"})}}, "n") {
		t.Error("a requisite without this node must refuse")
	}
}

func TestPage(t *testing.T) {
	ids := []string{"vol-0000000000000001", "vol-0000000000000002", "vol-0000000000000003"}
	start, end, next, err := page(ids, "", 2)
	if err != nil || start != 0 || end != 2 || next != ids[2] {
		t.Fatalf("first page: %d %d %q %v", start, end, next, err)
	}
	start, end, next, err = page(ids, next, 2)
	if err != nil || start != 2 || end != 3 || next != "" {
		t.Fatalf("second page: %d %d %q %v", start, end, next, err)
	}
	// A token whose entry was deleted meanwhile still continues after it.
	start, _, _, err = page([]string{ids[0], ids[2]}, ids[1], 0)
	if err != nil || start != 1 {
		t.Fatalf("token of a deleted entry: start %d, %v", start, err)
	}
	if _, _, _, err := page(ids, "invalid-token", 0); status.Code(err) != codes.Aborted {
		t.Fatalf("invalid token: %v, want Aborted", err)
	}
	if _, _, _, err := page(ids, "", -1); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("negative max: %v, want InvalidArgument", err)
	}
}
