package secret

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"volplane/internal/node/plugins/atomicwriter"
)

func ptr[T any](v T) *T { return &v }

func TestMakePayload(t *testing.T) {
	s := &corev1.Secret{Data: map[string][]byte{"user": []byte("admin"), "pass": []byte("pw")}}
	for _, tc := range []struct {
		name     string
		items    []corev1.KeyToPath
		mode     *int32
		optional bool
		secret   *corev1.Secret
		want     atomicwriter.Payload
		err      string
	}{
		{
			name: "all keys", mode: ptr(int32(0o400)), secret: s,
			want: atomicwriter.Payload{"user": {Data: []byte("admin"), Mode: 0o400}, "pass": {Data: []byte("pw"), Mode: 0o400}},
		},
		{
			name:  "items",
			items: []corev1.KeyToPath{{Key: "pass", Path: "db/password", Mode: ptr(int32(0o440))}},
			mode:  ptr(int32(0o644)), secret: s,
			want: atomicwriter.Payload{"db/password": {Data: []byte("pw"), Mode: 0o440}},
		},
		{
			name:  "missing key",
			items: []corev1.KeyToPath{{Key: "token", Path: "t"}},
			mode:  ptr(int32(0o644)), secret: s,
			err: "references non-existent secret key: token",
		},
		{
			name:  "missing key, optional",
			items: []corev1.KeyToPath{{Key: "token", Path: "t"}},
			mode:  ptr(int32(0o644)), secret: s, optional: true,
			want: atomicwriter.Payload{},
		},
		{name: "no defaultMode", secret: s, err: "no defaultMode used, not even the default value for it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MakePayload(tc.items, tc.secret, tc.mode, tc.optional)
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
