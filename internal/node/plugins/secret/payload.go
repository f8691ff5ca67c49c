package secret

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"volplane/internal/node/plugins/atomicwriter"
)

// MakePayload is what a secret volume (or a projected secret source)
// shows: every key of data when items is empty, else each item's key at
// its path with its mode. A key an item names that the secret lacks is an
// error unless optional. defaultMode must be set (the API defaults it to
// 0644).
func MakePayload(items []corev1.KeyToPath, s *corev1.Secret, defaultMode *int32, optional bool) (atomicwriter.Payload, error) {
	if defaultMode == nil {
		return nil, fmt.Errorf("no defaultMode used, not even the default value for it")
	}
	payload := make(atomicwriter.Payload, len(s.Data))
	if len(items) == 0 {
		for name, data := range s.Data {
			payload[name] = atomicwriter.File{Data: data, Mode: *defaultMode}
		}
		return payload, nil
	}
	for _, item := range items {
		data, ok := s.Data[item.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("references non-existent secret key: %s", item.Key)
		}
		mode := *defaultMode
		if item.Mode != nil {
			mode = *item.Mode
		}
		payload[item.Path] = atomicwriter.File{Data: data, Mode: mode}
	}
	return payload, nil
}
