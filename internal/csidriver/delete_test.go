package csidriver

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"volplane/internal/csidriver/state"
)

// TestDeleteVolumeInUse: a volume still published to a node, or staged
// or published on this one, is refused with FailedPrecondition naming the
// node(s), and stays, data and record; once unused it is deleted, twice.
func TestDeleteVolumeInUse(t *testing.T) {
	tests := []struct {
		name string
		use  func(v *state.Volume)
		// want are the words the refusal must carry.
		want []string
	}{
		{"published to one node", func(v *state.Volume) {
			v.Published = map[string]state.Publication{testNode: {}}
		}, []string{"published to node(s) " + testNode}},
		{"published to two nodes", func(v *state.Volume) {
			v.Published = map[string]state.Publication{"node-b": {}, "node-a": {}}
		}, []string{"published to node(s) node-a, node-b"}},
		{"staged", func(v *state.Volume) {
			v.Staged = &state.Staging{Path: "/staging"}
		}, []string{"staged or published on node " + testNode}},
		{"node-published", func(v *state.Volume) {
			v.Targets = map[string]state.Target{"/target": {}}
		}, []string{"staged or published on node " + testNode}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := fakeDriver(t)
			ctx := context.Background()
			id := mustCreate(t, d, createReq("in-use", mib, nil)).GetVolumeId()
			v, err := d.store.GetVolume(id)
			if err != nil {
				t.Fatal(err)
			}
			tt.use(&v)
			if err := d.store.PutVolume(v); err != nil {
				t.Fatal(err)
			}
			_, err = d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id})
			wantCode(t, err, codes.FailedPrecondition)
			for _, w := range tt.want {
				if msg := status.Convert(err).Message(); !strings.Contains(msg, w) {
					t.Errorf("refusal %q lacks %q", msg, w)
				}
			}
			if got, err := d.store.GetVolume(id); err != nil || got.Phase != state.Ready {
				t.Fatalf("refused volume: %+v, %v", got, err)
			}
			if names := dirEntries(t, filepath.Dir(d.pool.DirPath(id))); len(names) != 1 || names[0] != id {
				t.Fatalf("pool volumes after the refusal: %v, want %s", names, id)
			}

			v.Published, v.Staged, v.Targets = nil, nil, nil
			if err := d.store.PutVolume(v); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				if _, err := d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
					t.Fatalf("delete #%d of the unused volume: %v", i+1, err)
				}
			}
			if names := dirEntries(t, filepath.Dir(d.pool.DirPath(id))); len(names) != 0 {
				t.Fatalf("pool volumes after the deletion: %v", names)
			}
		})
	}
}
