package configmap

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"volplane/internal/node/plugins/atomicwriter"
)

// MakePayload is what a configMap volume (or a projected configMap
// source) shows: every key of data and binaryData when items is empty,
// else each item's key at its path with its mode. A key an item names
// that the configMap lacks is an error unless optional. defaultMode must
// be set (the API defaults it to 0644).
func MakePayload(items []corev1.KeyToPath, cm *corev1.ConfigMap, defaultMode *int32, optional bool) (atomicwriter.Payload, error) {
	if defaultMode == nil {
		return nil, fmt.Errorf("no defaultMode used, not even the default value for it")
	}
	payload := make(atomicwriter.Payload, len(cm.Data)+len(cm.BinaryData))
	if len(items) == 0 {
		for name, data := range cm.Data {
			payload[name] = atomicwriter.File{Data: []byte(data), Mode: *defaultMode}
		}
		for name, data := range cm.BinaryData {
			payload[name] = atomicwriter.File{Data: data, Mode: *defaultMode}
		}
		return payload, nil
	}
	for _, item := range items {
		var data []byte
		if s, ok := cm.Data[item.Key]; ok {
			data = []byte(s)
		} else if b, ok := cm.BinaryData[item.Key]; ok {
			data = b
		} else {
			if optional {
				continue
			}
			return nil, fmt.Errorf("configmap references non-existent config key: %s", item.Key)
		}
		mode := *defaultMode
		if item.Mode != nil {
			mode = *item.Mode
		}
		payload[item.Path] = atomicwriter.File{Data: data, Mode: mode}
	}
	return payload, nil
}
