package schedbench

import (
	"context"
	"fmt"
	"io"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	storagehelpers "k8s.io/component-helpers/storage/volume"

	"volplane/internal/node/podbench"
)

// Steps of a volume pod's claim the bench notes (podbench.ClaimMarks):
// its volume carries the claimRef (the scheduler's PreBind write), and
// the claim is bound: its volumeName and bind-completed annotation
// written (the PV controller's claim write). That write, not the claim's
// phase Bound, is what PreBind waits for, as upstream's binder does: the
// claim's status write that sets the phase follows it and races the
// pod's binding, so timing the phase made the last step negative.
const (
	stepClaimRef = "claimRef"
	stepBound    = "bound"
)

func startPhaseTracker(ctx context.Context, cs kubernetes.Interface) (*podbench.ClaimMarks, error) {
	return podbench.StartClaimMarks(ctx, cs, namespace,
		podbench.ClaimStep{Name: stepClaimRef, Volume: func(*v1.PersistentVolume) bool { return true }},
		podbench.ClaimStep{Name: stepBound, Claim: claimBound})
}

// claimBound: the PV controller has written the claim's side of the
// binding, which is what the binding plugin's PreBind waits for.
func claimBound(pvc *v1.PersistentVolumeClaim) bool {
	return pvc.Spec.VolumeName != "" && metav1.HasAnnotation(pvc.ObjectMeta, storagehelpers.AnnBindCompleted)
}

// phases are the volume shape's per-pod phase durations.
type phases struct {
	// toClaimRef: pod create -> its volume's claimRef seen (scheduling
	// cycle, PreBind's volume write); toBound: claimRef -> claim bound
	// (the PV controller's volume status and claim writes); toNode: claim
	// bound -> spec.nodeName (PreBind noticing, the binding write).
	toClaimRef, toBound, toNode []time.Duration
	missing                     int
}

// splitPhases splits each pod's time at the notes of marks; created and
// scheduled are by pod index, claimName names pod i's claim.
func splitPhases(marks *podbench.ClaimMarks, created []time.Time, scheduled func(i int) time.Time, claimName func(i int) string) phases {
	var p phases
	for i := range created {
		ref, okRef := marks.At(stepClaimRef, claimName(i))
		bound, okBound := marks.At(stepBound, claimName(i))
		if !okRef || !okBound {
			p.missing++
			continue
		}
		p.toClaimRef = append(p.toClaimRef, ref.Sub(created[i]))
		p.toBound = append(p.toBound, bound.Sub(ref))
		p.toNode = append(p.toNode, scheduled(i).Sub(bound))
	}
	return p
}

// print writes the phases' p50 and p99.
func (p phases) print(out io.Writer) {
	if len(p.toClaimRef) == 0 {
		return
	}
	fmt.Fprintf(out, "\nvolume pods' phases (as the bench saw them)         %10s %10s\n", "p50", "p99")
	for _, row := range []struct {
		label string
		ds    []time.Duration
	}{
		{"create -> volume claimRef (scheduling, PreBind write)", p.toClaimRef},
		{"claimRef -> claim bound (PV controller)", p.toBound},
		{"claim bound -> spec.nodeName (PreBind wake, binding)", p.toNode},
	} {
		fmt.Fprintf(out, "%-52s %10s %10s\n", row.label, podbench.Millis(percentile(row.ds, 50)), podbench.Millis(percentile(row.ds, 99)))
	}
	if p.missing > 0 {
		fmt.Fprintf(out, "(%d pods without both notes left out)\n", p.missing)
	}
}
