package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNoSecretsInLog: at -v 4, a pod that gets a Secret as a volume and
// as an environment variable, a projected service account token and a
// claim of a class that names provisioner, controller-publish and node
// secrets (csi.storage.k8s.io/*: the provisioner resolves them, the
// built-in driver ignores them) leaves none of those values in up's log,
// its log directory or the events; neither does a bootstrap token's
// secret. The container checks that both copies of the Secret arrived
// without printing them.
func TestNoSecretsInLog(t *testing.T) {
	p := startUp(t, "-v", "4")
	p.WaitPodsAccepted(t)
	const (
		value     = "SEKRETv4Qz81Lm"
		bootstrap = "q7w8e9r0t1y2u3i4"
		csiProv   = "SEKRETprovC9953x"
		csiNode   = "SEKRETnodeD1064y"
	)
	p.Apply(t, `apiVersion: v1
kind: Secret
metadata: {name: bootstrap-token-e2e123, namespace: kube-system}
type: bootstrap.kubernetes.io/token
stringData: {token-id: e2e123, token-secret: `+bootstrap+`, usage-bootstrap-authentication: "true"}
---
apiVersion: v1
kind: Secret
metadata: {name: s}
stringData: {pw: `+value+`}
---
apiVersion: v1
kind: Secret
metadata: {name: prov}
stringData: {key: `+csiProv+`}
---
apiVersion: v1
kind: Secret
metadata: {name: node}
stringData: {key: `+csiNode+`}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: with-secrets}
provisioner: local.csi.volplane.io
volumeBindingMode: WaitForFirstConsumer
parameters:
  csi.storage.k8s.io/provisioner-secret-name: prov
  csi.storage.k8s.io/provisioner-secret-namespace: default
  csi.storage.k8s.io/controller-publish-secret-name: prov
  csi.storage.k8s.io/controller-publish-secret-namespace: default
  csi.storage.k8s.io/node-stage-secret-name: node
  csi.storage.k8s.io/node-stage-secret-namespace: default
  csi.storage.k8s.io/node-publish-secret-name: node
  csi.storage.k8s.io/node-publish-secret-namespace: default
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: c}
spec:
  storageClassName: with-secrets
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 64Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: sec}
spec:
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'test "$(cat /s/pw)" = "$PW" && test -s /tok/token && echo delivered; sleep 3600']
    env:
    - name: PW
      valueFrom: {secretKeyRef: {name: s, key: pw}}
    volumeMounts:
    - {name: s, mountPath: /s}
    - {name: tok, mountPath: /tok}
    - {name: d, mountPath: /d}
  volumes:
  - name: s
    secret: {secretName: s}
  - name: tok
    projected:
      sources:
      - serviceAccountToken: {path: token, audience: e2e}
  - name: d
    persistentVolumeClaim: {claimName: c}
`)
	waitPodRunning(t, p, "sec")
	pv := p.MustKubectl(t, "get", "pvc", "c", "-o", "jsonpath={.spec.volumeName}")
	if refs := p.MustKubectl(t, "get", "pv", pv, "-o", "jsonpath={.spec.csi.nodeStageSecretRef.name} {.spec.csi.nodePublishSecretRef.name} {.spec.csi.controllerPublishSecretRef.name}"); refs != "node node prov" {
		t.Fatalf("the provisioner did not resolve the class's secrets: PV %s names %q", pv, refs)
	}
	eventually(t, time.Minute, func() error {
		out, err := p.Kubectl("logs", "sec")
		if err == nil && !strings.Contains(out, "delivered") {
			err = fmt.Errorf("the container did not get the secret: %q", out)
		}
		return err
	})
	token := strings.TrimSpace(p.MustKubectl(t, "exec", "sec", "--", "cat", "/tok/token"))
	if len(token) < 100 {
		t.Fatalf("projected token %q", token)
	}
	// The JWT's signature: its header and claims are no secret.
	signature := token[strings.LastIndex(token, ".")+1:]

	secrets := map[string]string{"the Secret's value": value, "the bootstrap token's secret": bootstrap, "the pod's token": signature,
		"the provisioner secret": csiProv, "the node secret": csiNode}
	where := map[string]string{
		"up's log": p.Output(),
		"events":   p.MustKubectl(t, "get", "events", "-A", "-o", "yaml"),
	}
	err := filepath.WalkDir(filepath.Join(p.DataDir, "logs"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		where[path] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range secrets {
		for w, text := range where {
			if strings.Contains(text, s) {
				i := strings.Index(text, s)
				t.Errorf("%s is in %s: ...%s...", name, w, text[max(0, i-300):min(len(text), i+len(s)+50)])
			}
		}
	}
}
