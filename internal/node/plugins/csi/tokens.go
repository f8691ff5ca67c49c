package csi

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"volplane/internal/node/plugins"
)

// keyTokens is the volume context key of the pod's service account
// tokens for a driver whose CSIDriver lists tokenRequests.
const keyTokens = "csi.storage.k8s.io/serviceAccount.tokens"

// DefaultRepublishPeriod is how often the volumes of drivers with
// requiresRepublish: true are published again (upstream's kubelet does it
// at its pod sync, every minute by default).
const DefaultRepublishPeriod = time.Minute

// serviceAccountToken is one entry of the tokens JSON, as upstream
// writes it.
type serviceAccountToken struct {
	Token               string      `json:"token"`
	ExpirationTimestamp metav1.Time `json:"expirationTimestamp"`
}

// tokens asks the TokenRequest API, as the node, for a token of the pod's
// service account bound to the pod for each of the CSIDriver's
// tokenRequests, and returns them as the JSON upstream puts in the volume
// context ({"<audience>": {"token": ..., "expirationTimestamp": ...}}),
// or "" when the driver asks for none. Tokens are never logged.
func (p *Plugin) tokens(ctx context.Context, obj *storagev1.CSIDriver, pod *corev1.Pod) (string, error) {
	if obj == nil || len(obj.Spec.TokenRequests) == 0 {
		return "", nil
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	out := map[string]serviceAccountToken{}
	for _, r := range obj.Spec.TokenRequests {
		audiences := []string{}
		if r.Audience != "" {
			audiences = []string{r.Audience}
		}
		tr, err := p.host.Client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{
				Audiences:         audiences,
				ExpirationSeconds: r.ExpirationSeconds,
				BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			return "", fmt.Errorf("kubernetes.io/csi: failed to get service account token of %s/%s for audience %q: %w", pod.Namespace, sa, r.Audience, err)
		}
		out[r.Audience] = serviceAccountToken{Token: tr.Status.Token, ExpirationTimestamp: tr.Status.ExpirationTimestamp}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// RequiresRemount is true for drivers whose CSIDriver says
// requiresRepublish: the volume manager then calls SetUp again when the
// plugin asks it to (every Config.RepublishPeriod), and SetUp publishes
// again, with fresh tokens.
func (p *Plugin) RequiresRemount(spec *plugins.Spec) bool {
	driver := specDriver(spec)
	if driver == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	obj, err := p.driverObject(ctx, driver)
	return err == nil && obj != nil && obj.Spec.RequiresRepublish != nil && *obj.Spec.RequiresRepublish
}

// republish asks the volume manager to set up again the pods' volumes of
// drivers that require republishing; it runs every RepublishPeriod from
// Init until Close.
func (p *Plugin) republish() {
	p.mu.Lock()
	pods := map[string][]published{}
	for _, pub := range p.published {
		pods[pub.driver] = append(pods[pub.driver], pub)
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for driver, pubs := range pods {
		obj, err := p.driverObject(ctx, driver)
		if err != nil || obj == nil || obj.Spec.RequiresRepublish == nil || !*obj.Spec.RequiresRepublish {
			continue
		}
		for _, pub := range pubs {
			p.host.Remount(pub.podUID)
		}
	}
}
