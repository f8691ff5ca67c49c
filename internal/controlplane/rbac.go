package controlplane

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// volplaneControllerRole is what volplane's storage controllers may do:
// the storage objects, the pods and nodes they reason about, events, and
// their leader Lease. Reconciled on every start so that an upgrade's new
// rights arrive with it.
var volplaneControllerRole = &rbacv1.ClusterRole{
	ObjectMeta: metav1.ObjectMeta{Name: VolplaneControllerIdentity.User},
	Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"persistentvolumes", "persistentvolumeclaims"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"persistentvolumes/status", "persistentvolumeclaims/status"}, Verbs: []string{"update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "create", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"nodes/status"}, Verbs: []string{"update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}},
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}},
		// list and watch: the recycler forwards its pod's events to the volume.
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch"}},
		{APIGroups: []string{"storage.k8s.io"}, Resources: []string{"storageclasses", "csidrivers", "csinodes", "volumeattributesclasses"}, Verbs: []string{"get", "list", "watch"}},
		// volumeattributesclass-protection adds and removes its finalizer.
		{APIGroups: []string{"storage.k8s.io"}, Resources: []string{"volumeattributesclasses"}, Verbs: []string{"update", "patch"}},
		{APIGroups: []string{"storage.k8s.io"}, Resources: []string{"volumeattachments", "csistoragecapacities"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		{APIGroups: []string{"storage.k8s.io"}, Resources: []string{"volumeattachments/status"}, Verbs: []string{"update", "patch"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch"}},
		// The kubelet-serving CSR approver.
		{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests/approval"}, Verbs: []string{"update"}},
		{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"signers"}, ResourceNames: []string{"kubernetes.io/kubelet-serving"}, Verbs: []string{"approve"}},
		// --controller-metrics-listen asks the API who a caller is and
		// whether it may get /metrics, as kube-controller-manager's role
		// lets it.
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
	},
}

var volplaneControllerBinding = userBinding(volplaneControllerRole.Name, VolplaneControllerIdentity.User)

// localProvisionerRole is what the node agents' local static provisioner
// may do, and nothing else: make and delete the PVs of the mount points
// it finds, read its class and its Node, list pods to see whether a
// released volume is still used, and record events.
var localProvisionerRole = &rbacv1.ClusterRole{
	ObjectMeta: metav1.ObjectMeta{Name: LocalProvisionerIdentity.User},
	Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"persistentvolumes"}, Verbs: []string{"get", "list", "watch", "create", "delete"}},
		{APIGroups: []string{"storage.k8s.io"}, Resources: []string{"storageclasses"}, Verbs: []string{"get"}},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	},
}

var localProvisionerBinding = userBinding(localProvisionerRole.Name, LocalProvisionerIdentity.User)

func userBinding(role, user string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
}

// nodeBindings are what kubeadm binds for joining nodes, which upstream
// leaves to the installer: bootstrap tokens may ask for a node client
// certificate (upstream's csrapproving controller approves it), and nodes
// may renew their own.
var nodeBindings = []*rbacv1.ClusterRoleBinding{
	groupBinding("volplane:kubelet-bootstrap", "system:node-bootstrapper", BootstrappersGroup),
	groupBinding("volplane:node-autoapprove-bootstrap", "system:certificates.k8s.io:certificatesigningrequests:nodeclient", BootstrappersGroup),
	groupBinding("volplane:node-autoapprove-certificate-rotation", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", NodesGroup),
}

func groupBinding(name, role, group string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: group}},
	}
}

// reconcileRBAC makes the cluster roles volplane's components need exist
// as volplane defines them.
func reconcileRBAC(ctx context.Context, cs kubernetes.Interface) error {
	roles := cs.RbacV1().ClusterRoles()
	for _, role := range []*rbacv1.ClusterRole{volplaneControllerRole, localProvisionerRole} {
		if cur, err := roles.Get(ctx, role.Name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			if _, err := roles.Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("rbac: %w", err)
			}
		} else if err != nil {
			return fmt.Errorf("rbac: %w", err)
		} else {
			cur.Rules = role.Rules
			if _, err := roles.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("rbac: %w", err)
			}
		}
	}
	bindings := cs.RbacV1().ClusterRoleBindings()
	for _, b := range append([]*rbacv1.ClusterRoleBinding{volplaneControllerBinding, localProvisionerBinding}, nodeBindings...) {
		if _, err := bindings.Create(ctx, b, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("rbac: %w", err)
		}
	}
	return nil
}
