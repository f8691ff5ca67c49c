package volumebinding

import (
	"cmp"
	"fmt"
	"slices"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	storagehelpers "k8s.io/component-helpers/storage/volume"

	"volplane/internal/volumematch"
)

// Upstream's reasons, word for word: they end up in the pod's
// FailedScheduling event ("0/3 nodes are available: 1 node(s) didn't
// match PersistentVolume's node affinity, ...").
const (
	ReasonNodeConflict     = "node(s) didn't match PersistentVolume's node affinity"
	ReasonBindConflict     = "node(s) didn't find available persistent volumes to bind"
	ReasonNotEnoughSpace   = "node(s) did not have enough free storage"
	ReasonPVNotExist       = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
	ReasonUnboundImmediate = "pod has unbound immediate PersistentVolumeClaims"
)

// notSupportedProvisioner is the provisioner of classes whose volumes
// are only ever made by hand (local PVs).
const notSupportedProvisioner = "kubernetes.io/no-provisioner"

// podClaims sorts the claims of a pod as PreFilter found them.
type podClaims struct {
	// bound claims: their volume's node affinity must admit the node.
	bound []*v1.PersistentVolumeClaim
	// delayed are the unbound claims of WaitForFirstConsumer classes:
	// the scheduler chooses their volume or has them provisioned.
	delayed []*v1.PersistentVolumeClaim
}

// binding is a volume chosen for a claim.
type binding struct {
	pv    *v1.PersistentVolume
	claim *v1.PersistentVolumeClaim
}

// provision is a claim to be provisioned for the node, with the
// capacity object that admitted it (nil when capacity is not tracked).
type provision struct {
	claim    *v1.PersistentVolumeClaim
	capacity *storagev1.CSIStorageCapacity
}

// nodeVolumes is what Filter found for a pod on one node.
type nodeVolumes struct {
	bindings   []binding
	provisions []provision
}

// world is what finding volumes reads: the plugin's caches in the
// scheduler, plain slices in tests.
type world interface {
	// volume returns a PV by name as the scheduler sees it (its own
	// assumptions included), or nil.
	volume(name string) *v1.PersistentVolume
	// prebound returns the volumes whose claimRef names the claim and
	// which are not bound to it yet.
	prebound(claim *v1.PersistentVolumeClaim) []*v1.PersistentVolume
	// best returns the best bindable volume for the claim, by
	// volumematch's rules, among those the node reaches and taken (if
	// set) does not reject.
	best(claim *v1.PersistentVolumeClaim, node *v1.Node, taken func(*v1.PersistentVolume) bool) (*v1.PersistentVolume, error)
	// class returns a StorageClass, or an error if it does not exist.
	class(name string) (*storagev1.StorageClass, error)
	// driver returns a CSIDriver, or nil.
	driver(name string) *storagev1.CSIDriver
	// capacities returns the CSIStorageCapacity objects of a class.
	capacities(class string) []*storagev1.CSIStorageCapacity
}

// findPodVolumes checks the pod's claims against one node, as upstream's
// FindPodVolumes: bound claims' volumes must admit the node; each
// delayed claim gets an available matching volume the node can reach, or
// else must be provisionable for the node. selectedNode says which node
// a claim is already being provisioned for ("" when none). It returns
// the reasons the node does not fit (upstream's wording), or what to
// bind and provision there.
func findPodVolumes(w world, claims *podClaims, node *v1.Node, selectedNode func(*v1.PersistentVolumeClaim) string) (*nodeVolumes, []string, error) {
	out := &nodeVolumes{}
	var reasons []string
	boundOK, boundFound := true, true
	for _, claim := range claims.bound {
		pv := w.volume(claim.Spec.VolumeName)
		if pv == nil {
			boundFound = false
			break
		}
		if storagehelpers.CheckNodeAffinity(pv, node.Labels) != nil {
			boundOK = false
			break
		}
	}
	if !boundOK {
		reasons = append(reasons, ReasonNodeConflict)
	}
	unboundOK, enoughSpace := true, true
	var toMatch, toProvision []*v1.PersistentVolumeClaim
	for _, claim := range claims.delayed {
		switch sel := selectedNode(claim); {
		case sel == "":
			toMatch = append(toMatch, claim)
		case sel != node.Name:
			unboundOK = false
		default:
			toProvision = append(toProvision, claim)
		}
	}
	if unboundOK && len(toMatch) > 0 {
		bindings, rest, err := matchVolumes(w, toMatch, node)
		if err != nil {
			return nil, nil, err
		}
		out.bindings = bindings
		toProvision = append(toProvision, rest...)
	}
	if unboundOK && len(toProvision) > 0 {
		provisions, ok, space, err := checkProvisions(w, toProvision, node)
		if err != nil {
			return nil, nil, err
		}
		unboundOK, enoughSpace = ok, space
		out.provisions = provisions
	}
	if !unboundOK {
		reasons = append(reasons, ReasonBindConflict)
	}
	if !enoughSpace {
		reasons = append(reasons, ReasonNotEnoughSpace)
	}
	if !boundFound {
		reasons = append(reasons, ReasonPVNotExist)
	}
	if len(reasons) > 0 {
		return nil, reasons, nil
	}
	return out, nil, nil
}

// matchVolumes chooses a volume for each claim, smallest request first,
// never one volume twice: a volume pre-bound to the claim if one fits
// and the node reaches it, else the best available one the node
// reaches. It returns the claims with no volume, to be provisioned.
func matchVolumes(w world, claims []*v1.PersistentVolumeClaim, node *v1.Node) ([]binding, []*v1.PersistentVolumeClaim, error) {
	claims = slices.Clone(claims)
	slices.SortStableFunc(claims, func(a, b *v1.PersistentVolumeClaim) int {
		return cmp.Compare(volumematch.Request(a), volumematch.Request(b))
	})
	chosen := map[string]bool{}
	taken := func(pv *v1.PersistentVolume) bool { return chosen[pv.Name] }
	reachable := func(pv *v1.PersistentVolume) bool {
		return !chosen[pv.Name] && storagehelpers.CheckNodeAffinity(pv, node.Labels) == nil
	}
	var bindings []binding
	var rest []*v1.PersistentVolumeClaim
	for _, claim := range claims {
		var found *v1.PersistentVolume
		for _, pv := range w.prebound(claim) {
			if volumematch.PreboundFits(pv, claim) && reachable(pv) {
				found = pv
				break
			}
		}
		if found == nil {
			pv, err := w.best(claim, node, taken)
			if err != nil {
				return nil, nil, err
			}
			found = pv
		}
		if found == nil {
			rest = append(rest, claim)
			continue
		}
		chosen[found.Name] = true
		bindings = append(bindings, binding{pv: found, claim: claim})
	}
	return bindings, rest, nil
}

// checkProvisions says whether every claim can be provisioned for the
// node: its class has a provisioner, the class's allowedTopologies admit
// the node, and, for a CSI driver that publishes storage capacity, a
// CSIStorageCapacity of the class that the node reaches has room. ok is
// false when a claim cannot be provisioned at all, space false when it
// could be but no capacity has room.
func checkProvisions(w world, claims []*v1.PersistentVolumeClaim, node *v1.Node) (provisions []provision, ok, space bool, err error) {
	for _, claim := range claims {
		name := storagehelpers.GetPersistentVolumeClaimClass(claim)
		if name == "" {
			return nil, false, false, fmt.Errorf("no class for claim %q", claim.Namespace+"/"+claim.Name)
		}
		class, err := w.class(name)
		if err != nil {
			return nil, false, false, fmt.Errorf("failed to find storage class %q: %w", name, err)
		}
		if class.Provisioner == "" || class.Provisioner == notSupportedProvisioner {
			return nil, false, true, nil
		}
		if !matchTopology(class.AllowedTopologies, node.Labels) {
			return nil, false, true, nil
		}
		capacity, enough := hasCapacity(w, class, claim, node)
		if !enough {
			return nil, true, false, nil
		}
		provisions = append(provisions, provision{claim: claim, capacity: capacity})
	}
	return provisions, true, true, nil
}

// matchTopology reports whether node labels satisfy a class's
// allowedTopologies: any one term, each of whose expressions has the
// node's value of its key among its values. No terms admit every node.
func matchTopology(terms []v1.TopologySelectorTerm, nodeLabels map[string]string) bool {
	if len(terms) == 0 {
		return true
	}
	for _, term := range terms {
		if termMatches(term, nodeLabels) {
			return true
		}
	}
	return false
}

func termMatches(term v1.TopologySelectorTerm, nodeLabels map[string]string) bool {
	for _, e := range term.MatchLabelExpressions {
		v, ok := nodeLabels[e.Key]
		if !ok || !slices.Contains(e.Values, v) {
			return false
		}
	}
	return true
}

// hasCapacity reports whether a new volume for the claim fits: always,
// unless the class's provisioner is a CSI driver with storageCapacity:
// true; then some CSIStorageCapacity of the class whose nodeTopology
// selects the node must offer at least the request (maximumVolumeSize
// when set, else capacity). It returns that object.
func hasCapacity(w world, class *storagev1.StorageClass, claim *v1.PersistentVolumeClaim, node *v1.Node) (*storagev1.CSIStorageCapacity, bool) {
	request, ok := claim.Spec.Resources.Requests[v1.ResourceStorage]
	if !ok {
		return nil, true
	}
	driver := w.driver(class.Provisioner)
	if driver == nil || driver.Spec.StorageCapacity == nil || !*driver.Spec.StorageCapacity {
		return nil, true
	}
	for _, c := range w.capacities(class.Name) {
		limit := c.Capacity
		if c.MaximumVolumeSize != nil {
			limit = c.MaximumVolumeSize
		}
		if limit == nil || limit.Cmp(request) < 0 || !capacityReaches(c, node) {
			continue
		}
		return c, true
	}
	return nil, false
}

// capacityReaches reports whether a capacity's nodeTopology selects the
// node; a capacity without one reaches no node.
func capacityReaches(c *storagev1.CSIStorageCapacity, node *v1.Node) bool {
	if c.NodeTopology == nil {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(c.NodeTopology)
	if err != nil {
		return false
	}
	return sel.Matches(labels.Set(node.Labels))
}

// volumeUse is what Score measures for the node: per class, the
// requests of the claims and the size they get (the chosen volumes',
// or, with no static binding, the capacity that admitted provisioning).
func volumeUse(nv *nodeVolumes) map[string]classUse {
	use := map[string]classUse{}
	if len(nv.bindings) > 0 {
		for _, b := range nv.bindings {
			class := storagehelpers.GetPersistentVolumeClass(b.pv)
			u := use[class]
			u.requested += volumematch.Request(b.claim)
			u.capacity += volumematch.Capacity(b.pv)
			use[class] = u
		}
		return use
	}
	for _, p := range nv.provisions {
		if p.capacity == nil || p.capacity.Capacity == nil {
			continue
		}
		class := storagehelpers.GetPersistentVolumeClaimClass(p.claim)
		u := use[class]
		// The capacity is the pool's, once per class however many
		// claims it serves.
		u.capacity = p.capacity.Capacity.Value()
		u.requested += volumematch.Request(p.claim)
		use[class] = u
	}
	return use
}
