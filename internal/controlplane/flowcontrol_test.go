package controlplane

import (
	"context"
	"testing"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestReconcileFlowSchemas(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	schemas := cs.FlowcontrolV1().FlowSchemas()
	if err := reconcileFlowSchemas(ctx, cs); err != nil {
		t.Fatal(err)
	}
	fs, err := schemas.Get(ctx, "volplane-controller-manager", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fs.Spec.PriorityLevelConfiguration.Name != "workload-high" || fs.Spec.MatchingPrecedence != 800 {
		t.Errorf("volplane-controller-manager: level %q precedence %d, want workload-high 800 (as kube-controller-manager's)",
			fs.Spec.PriorityLevelConfiguration.Name, fs.Spec.MatchingPrecedence)
	}
	if got := fs.Spec.Rules[0].Subjects[0].User.Name; got != VolplaneControllerIdentity.User {
		t.Errorf("subject %q, want %q", got, VolplaneControllerIdentity.User)
	}
	if fs.Annotations[flowcontrolv1.AutoUpdateAnnotationKey] != "true" {
		t.Errorf("annotations %v: want %s true", fs.Annotations, flowcontrolv1.AutoUpdateAnnotationKey)
	}

	// A drifted spec is put back; one an administrator keeps is left.
	fs.Spec.PriorityLevelConfiguration.Name = "global-default"
	if _, err := schemas.Update(ctx, fs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	le, err := schemas.Get(ctx, "volplane-leader-election", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	le.Annotations[flowcontrolv1.AutoUpdateAnnotationKey] = "false"
	le.Spec.PriorityLevelConfiguration.Name = "workload-low"
	if _, err := schemas.Update(ctx, le, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := reconcileFlowSchemas(ctx, cs); err != nil {
		t.Fatal(err)
	}
	if fs, _ = schemas.Get(ctx, fs.Name, metav1.GetOptions{}); fs.Spec.PriorityLevelConfiguration.Name != "workload-high" {
		t.Errorf("drifted spec not put back: level %q", fs.Spec.PriorityLevelConfiguration.Name)
	}
	if le, _ = schemas.Get(ctx, le.Name, metav1.GetOptions{}); le.Spec.PriorityLevelConfiguration.Name != "workload-low" {
		t.Errorf("autoupdate-spec false overwritten: level %q", le.Spec.PriorityLevelConfiguration.Name)
	}
}
