package provbench

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"volplane/internal/node/podbench"
)

// annStorageProvisioner is the PV controller's request to provision a
// claim, the first step of its path.
const annStorageProvisioner = "volume.kubernetes.io/storage-provisioner"

// Steps of an Immediate claim the bench notes (podbench.ClaimMarks): the
// PV controller asks for provisioning (the annotation), a volume carries
// the claim's claimRef (the provisioner's PV write), the claim is Bound
// (the PV controller's last write).
const (
	stepAsked  = "asked"
	stepVolume = "volume"
	stepBound  = "bound"
)

func startPhaseTracker(ctx context.Context, cs kubernetes.Interface) (*podbench.ClaimMarks, error) {
	return podbench.StartClaimMarks(ctx, cs, namespace,
		podbench.ClaimStep{Name: stepAsked, Claim: func(pvc *v1.PersistentVolumeClaim) bool {
			_, ok := pvc.Annotations[annStorageProvisioner]
			return ok
		}},
		podbench.ClaimStep{Name: stepVolume, Volume: func(*v1.PersistentVolume) bool { return true }},
		podbench.ClaimStep{Name: stepBound, Claim: func(pvc *v1.PersistentVolumeClaim) bool { return pvc.Status.Phase == v1.ClaimBound }})
}

// Phases split the Immediate claims' time: create call -> provisioning
// asked (PV controller), -> PV written (provisioner: CreateVolume and the
// PV create), -> claim Bound (PV controller: the bind's writes).
type Phases struct {
	ToAsked, ToVolume, ToBound []time.Duration
	// Missing counts claims with a phase the informers did not see.
	Missing int
}

// splitPhases splits each claim's time at the notes of marks;
// created[i] is claim i's create call.
func splitPhases(marks *podbench.ClaimMarks, created []time.Time) Phases {
	var p Phases
	for i, c := range created {
		name := claimName(i)
		asked, ok1 := marks.At(stepAsked, name)
		vol, ok2 := marks.At(stepVolume, name)
		bound, ok3 := marks.At(stepBound, name)
		if !ok1 || !ok2 || !ok3 {
			p.Missing++
			continue
		}
		p.ToAsked = append(p.ToAsked, asked.Sub(c))
		p.ToVolume = append(p.ToVolume, vol.Sub(asked))
		p.ToBound = append(p.ToBound, bound.Sub(vol))
	}
	return p
}

// rows are the phases' p50/p99 lines of the table.
func (p Phases) rows() []podbench.Row {
	if len(p.ToAsked) == 0 {
		return nil
	}
	ms := podbench.Millis
	pair := func(ds []time.Duration) string {
		return ms(podbench.Percentile(ds, 50)) + " / " + ms(podbench.Percentile(ds, 99))
	}
	note := "p50 / p99, as the bench's informers saw them"
	if p.Missing > 0 {
		note += fmt.Sprintf("; %d claims with a phase not seen", p.Missing)
	}
	return []podbench.Row{
		{Figure: "  created -> provisioning asked (PV controller)", Value: pair(p.ToAsked), Note: note},
		{Figure: "  asked -> PV written (provisioner, driver)", Value: pair(p.ToVolume)},
		{Figure: "  PV written -> claim Bound (PV controller)", Value: pair(p.ToBound)},
	}
}
