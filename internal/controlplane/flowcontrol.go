package controlplane

import (
	"context"
	"fmt"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// API Priority and Fairness puts a request no FlowSchema names in
// global-default, the level of ordinary users. The API server's own
// suggested FlowSchemas give kube-controller-manager's requests the
// priority level workload-high (and its leader election the level
// leader-election), so that a busy user cannot starve the controllers
// and the controllers are not held to a user's share of seats.
// volplane's storage controllers are kube-controller-manager's storage
// controllers in another process: these FlowSchemas treat them the same.
// Measured with `volplane bench provision`, under global-default the PV
// controller's and the provisioner's writes waited 13 ms on average in
// APF's queues for global-default's ~50 seats while they were all the
// load there was.
//
// Like the API server's suggested FlowSchemas they carry
// apf.kubernetes.io/autoupdate-spec: volplane puts their spec back on
// every start unless an administrator has set the annotation to "false".
var volplaneFlowSchemas = []*flowcontrolv1.FlowSchema{
	// As the API server's system-leader-election.
	controllerFlowSchema("volplane-leader-election", "leader-election", 100, flowcontrolv1.FlowDistinguisherMethodByUserType,
		flowcontrolv1.PolicyRulesWithSubjects{
			ResourceRules: []flowcontrolv1.ResourcePolicyRule{{
				Verbs:      []string{"get", "create", "update"},
				APIGroups:  []string{"coordination.k8s.io"},
				Resources:  []string{"leases"},
				Namespaces: []string{flowcontrolv1.NamespaceEvery},
			}},
		}),
	// As the API server's kube-controller-manager.
	controllerFlowSchema("volplane-controller-manager", "workload-high", 800, flowcontrolv1.FlowDistinguisherMethodByNamespaceType,
		flowcontrolv1.PolicyRulesWithSubjects{
			ResourceRules: []flowcontrolv1.ResourcePolicyRule{{
				Verbs:        []string{flowcontrolv1.VerbAll},
				APIGroups:    []string{flowcontrolv1.APIGroupAll},
				Resources:    []string{flowcontrolv1.ResourceAll},
				ClusterScope: true,
				Namespaces:   []string{flowcontrolv1.NamespaceEvery},
			}},
			NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{{
				Verbs:           []string{flowcontrolv1.VerbAll},
				NonResourceURLs: []string{flowcontrolv1.NonResourceAll},
			}},
		}),
}

// controllerFlowSchema is the FlowSchema called name that puts the
// requests of volplane's controller manager that match rule into the
// priority level called level.
func controllerFlowSchema(name, level string, precedence int32, by flowcontrolv1.FlowDistinguisherMethodType, rule flowcontrolv1.PolicyRulesWithSubjects) *flowcontrolv1.FlowSchema {
	rule.Subjects = []flowcontrolv1.Subject{{
		Kind: flowcontrolv1.SubjectKindUser,
		User: &flowcontrolv1.UserSubject{Name: VolplaneControllerIdentity.User},
	}}
	return &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: level},
			MatchingPrecedence:         precedence,
			DistinguisherMethod:        &flowcontrolv1.FlowDistinguisherMethod{Type: by},
			Rules:                      []flowcontrolv1.PolicyRulesWithSubjects{rule},
		},
	}
}

// reconcileFlowSchemas makes volplane's FlowSchemas exist as volplane
// defines them, leaving alone one an administrator marked
// apf.kubernetes.io/autoupdate-spec: "false".
func reconcileFlowSchemas(ctx context.Context, cs kubernetes.Interface) error {
	schemas := cs.FlowcontrolV1().FlowSchemas()
	for _, want := range volplaneFlowSchemas {
		want = want.DeepCopy()
		want.Annotations = map[string]string{flowcontrolv1.AutoUpdateAnnotationKey: "true"}
		cur, err := schemas.Get(ctx, want.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			if _, err := schemas.Create(ctx, want, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("flow schema %s: %w", want.Name, err)
			}
		case err != nil:
			return fmt.Errorf("flow schema %s: %w", want.Name, err)
		case cur.Annotations[flowcontrolv1.AutoUpdateAnnotationKey] == "false":
		case !equality.Semantic.DeepEqual(cur.Spec, want.Spec):
			cur.Spec = want.Spec
			if _, err := schemas.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("flow schema %s: %w", want.Name, err)
			}
		}
	}
	return nil
}
