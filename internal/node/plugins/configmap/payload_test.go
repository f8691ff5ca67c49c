package configmap

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"volplane/internal/node/plugins/atomicwriter"
)

func ptr[T any](v T) *T { return &v }

func TestMakePayload(t *testing.T) {
	cm := &corev1.ConfigMap{
		Data:       map[string]string{"a": "A", "b": "B"},
		BinaryData: map[string][]byte{"bin": {0, 1, 2}},
	}
	for _, tc := range []struct {
		name     string
		items    []corev1.KeyToPath
		mode     *int32
		optional bool
		cm       *corev1.ConfigMap
		want     atomicwriter.Payload
		err      string
	}{
		{
			name: "all keys, data and binaryData",
			mode: ptr(int32(0o644)), cm: cm,
			want: atomicwriter.Payload{"a": {Data: []byte("A"), Mode: 0o644}, "b": {Data: []byte("B"), Mode: 0o644}, "bin": {Data: []byte{0, 1, 2}, Mode: 0o644}},
		},
		{
			name:  "items with path and mode",
			items: []corev1.KeyToPath{{Key: "a", Path: "dir/a.txt", Mode: ptr(int32(0o400))}, {Key: "bin", Path: "bin"}},
			mode:  ptr(int32(0o644)), cm: cm,
			want: atomicwriter.Payload{"dir/a.txt": {Data: []byte("A"), Mode: 0o400}, "bin": {Data: []byte{0, 1, 2}, Mode: 0o644}},
		},
		{
			name:  "missing key",
			items: []corev1.KeyToPath{{Key: "nope", Path: "x"}},
			mode:  ptr(int32(0o644)), cm: cm,
			err: "configmap references non-existent config key: nope",
		},
		{
			name:  "missing key, optional",
			items: []corev1.KeyToPath{{Key: "nope", Path: "x"}, {Key: "a", Path: "a"}},
			mode:  ptr(int32(0o644)), cm: cm, optional: true,
			want: atomicwriter.Payload{"a": {Data: []byte("A"), Mode: 0o644}},
		},
		{
			name: "optional and absent: empty",
			mode: ptr(int32(0o644)), cm: &corev1.ConfigMap{}, optional: true,
			want: atomicwriter.Payload{},
		},
		{
			name: "no defaultMode",
			cm:   cm,
			err:  "no defaultMode used, not even the default value for it",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MakePayload(tc.items, tc.cm, tc.mode, tc.optional)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
