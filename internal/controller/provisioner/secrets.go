package provisioner

import (
	"fmt"
	"regexp"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// secretParams are the StorageClass parameter keys of one secret.
type secretParams struct{ name, namespace string }

func keys(kind string) secretParams {
	return secretParams{name: "csi.storage.k8s.io/" + kind + "-secret-name", namespace: "csi.storage.k8s.io/" + kind + "-secret-namespace"}
}

// The secrets a class can name, as upstream's external-provisioner reads
// them.
var (
	provisionerSecret       = keys("provisioner")
	controllerPublishSecret = keys("controller-publish")
	nodeStageSecret         = keys("node-stage")
	nodePublishSecret       = keys("node-publish")
	controllerExpandSecret  = keys("controller-expand")
	nodeExpandSecret        = keys("node-expand")
)

// Annotations on a provisioned PV naming the secret DeleteVolume needs,
// resolved when the volume was created.
const (
	annDeletionSecretName      = "volume.kubernetes.io/provisioner-deletion-secret-name"
	annDeletionSecretNamespace = "volume.kubernetes.io/provisioner-deletion-secret-namespace"
)

var tokenRE = regexp.MustCompile(`\$\{([^}]*)\}`)

// resolveTemplate replaces every ${token} of tmpl from params; a token
// params lacks is an error.
func resolveTemplate(tmpl string, params map[string]string) (string, error) {
	var missing []string
	out := tokenRE.ReplaceAllStringFunc(tmpl, func(m string) string {
		tok := m[2 : len(m)-1]
		v, ok := params[tok]
		if !ok {
			missing = append(missing, m)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("invalid tokens: %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// secretRef resolves the secret of kind sp from class parameters for a
// claim (nil when deleting without one) and the PV name. The namespace
// template may use ${pv.name} and ${pvc.namespace}; the name template also
// ${pvc.name} and ${pvc.annotations['KEY']}. No parameters is no secret;
// only one of the two is an error.
func secretRef(sp secretParams, params map[string]string, pvName string, claim *v1.PersistentVolumeClaim) (*v1.SecretReference, error) {
	nameTmpl, hasName := params[sp.name]
	nsTmpl, hasNS := params[sp.namespace]
	switch {
	case !hasName && !hasNS:
		return nil, nil
	case !hasName || !hasNS:
		return nil, fmt.Errorf("either name and namespace for %s secret must be provided, or neither", strings.TrimSuffix(strings.TrimPrefix(sp.name, "csi.storage.k8s.io/"), "-secret-name"))
	}
	nsParams := map[string]string{"pv.name": pvName}
	nameParams := map[string]string{"pv.name": pvName}
	if claim != nil {
		nsParams["pvc.namespace"] = claim.Namespace
		nameParams["pvc.namespace"] = claim.Namespace
		nameParams["pvc.name"] = claim.Name
		for k, v := range claim.Annotations {
			nameParams["pvc.annotations['"+k+"']"] = v
		}
	}
	ns, err := resolveTemplate(nsTmpl, nsParams)
	if err != nil {
		return nil, fmt.Errorf("error resolving value %q of %s: %w", nsTmpl, sp.namespace, err)
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return nil, fmt.Errorf("%s resolves to %q, not a valid namespace: %s", sp.namespace, ns, strings.Join(errs, "; "))
	}
	name, err := resolveTemplate(nameTmpl, nameParams)
	if err != nil {
		return nil, fmt.Errorf("error resolving value %q of %s: %w", nameTmpl, sp.name, err)
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return nil, fmt.Errorf("%s resolves to %q, not a valid secret name: %s", sp.name, name, strings.Join(errs, "; "))
	}
	return &v1.SecretReference{Name: name, Namespace: ns}, nil
}
