package volumezone

import (
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// ReasonConflict is upstream's reason, word for word.
const ReasonConflict = "node(s) had no available volume zone"

// topologyLabels are the volume labels the plugin honours, in
// upstream's order.
var topologyLabels = []string{
	v1.LabelFailureDomainBetaZone,
	v1.LabelFailureDomainBetaRegion,
	v1.LabelTopologyZone,
	v1.LabelTopologyRegion,
}

// gaLabel is the GA name of a deprecated beta label (a beta-labelled
// volume fits a node labelled only with the GA key).
func gaLabel(key string) string {
	switch key {
	case v1.LabelFailureDomainBetaZone:
		return v1.LabelTopologyZone
	case v1.LabelFailureDomainBetaRegion:
		return v1.LabelTopologyRegion
	}
	return key
}

// topology is one zone-like label of a volume: the node must have key
// with one of values.
type topology struct {
	volume string
	key    string
	values []string
}

// multiZoneDelimiter joins several zones in one label value.
const multiZoneDelimiter = "__"

// zones splits a label value into its zones; ok is false when one of
// them is empty (the label is then ignored, as upstream ignores a value
// it cannot parse).
func zones(value string) ([]string, bool) {
	parts := strings.Split(value, multiZoneDelimiter)
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
		if parts[i] == "" {
			return nil, false
		}
	}
	slices.Sort(parts)
	return slices.Compact(parts), true
}

// volumeTopologies returns the zone-like labels of a volume.
func volumeTopologies(pv *v1.PersistentVolume) []topology {
	var out []topology
	for _, key := range topologyLabels {
		value, ok := pv.Labels[key]
		if !ok {
			continue
		}
		values, ok := zones(value)
		if !ok {
			continue
		}
		out = append(out, topology{volume: pv.Name, key: key, values: values})
	}
	return out
}

// fits reports whether a node with these labels satisfies every
// topology. A node with no zone-like label at all fits everything.
func fits(topologies []topology, nodeLabels map[string]string) bool {
	constrained := false
	for _, key := range topologyLabels {
		if _, ok := nodeLabels[key]; ok {
			constrained = true
			break
		}
	}
	if !constrained {
		return true
	}
	for _, t := range topologies {
		v, ok := nodeLabels[t.key]
		if !ok {
			v, ok = nodeLabels[gaLabel(t.key)]
		}
		if !ok || !slices.Contains(t.values, v) {
			return false
		}
	}
	return true
}
