package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestControllerMetricsNeedAuth: --controller-metrics-listen answers as
// kube-controller-manager's secure port: over HTTPS, metrics only to a
// caller allowed to get /metrics (the admin; a service account bound to
// a role with that non-resource URL), 403 to anyone else, no credentials
// included, and nothing over plain HTTP.
func TestControllerMetricsNeedAuth(t *testing.T) {
	addr := freeAddr(t)
	p := startUp(t, "--controller-metrics-listen", addr)
	p.MustKubectl(t, "create", "serviceaccount", "nobody")
	p.MustKubectl(t, "create", "serviceaccount", "prometheus")
	p.MustKubectl(t, "create", "clusterrole", "metrics-reader", "--verb=get", "--non-resource-url=/metrics")
	p.MustKubectl(t, "create", "clusterrolebinding", "metrics-reader", "--clusterrole=metrics-reader", "--serviceaccount=default:prometheus")
	nobody := strings.TrimSpace(p.MustKubectl(t, "create", "token", "nobody"))
	prometheus := strings.TrimSpace(p.MustKubectl(t, "create", "token", "prometheus"))
	admin := p.REST().BearerToken
	if admin == "" {
		t.Fatal("the admin kubeconfig has no bearer token")
	}

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		// The certificate is self-signed, as kube-controller-manager's
		// without --tls-cert-file; the caller is what is checked.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	get := func(url, token string) (int, string, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return 0, "", err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	const metric = "volplane_controller_manager_leader"

	tests := []struct {
		name, token string
		wantCode    int
	}{
		{"no credentials", "", 403},
		{"a bogus token", "bogus", 401},
		{"a service account without the right", nobody, 403},
		{"a service account allowed get /metrics", prometheus, 200},
		{"the admin", admin, 200},
	}
	for _, tc := range tests {
		// The RBAC objects just made reach the authorizer's cache
		// shortly after: ask until the answer is the one wanted.
		var code int
		var body string
		eventually(t, time.Minute, func() error {
			var err error
			code, body, err = get("https://"+addr+"/metrics", tc.token)
			if err == nil && code != tc.wantCode {
				err = fmt.Errorf("%s: %d, want %d: %.300s", tc.name, code, tc.wantCode, body)
			}
			return err
		})
		if served := strings.Contains(body, metric); served != (tc.wantCode == 200) {
			t.Errorf("%s: %d, metrics served %v: %.300s", tc.name, code, served, body)
		}
	}
	// Plain HTTP, asked once HTTPS has answered: whatever answers, never
	// the metrics.
	if code, body, err := get("http://"+addr+"/metrics", ""); err == nil && (code == 200 || strings.Contains(body, metric)) {
		t.Errorf("plain HTTP without credentials: %d, metrics served", code)
	}
}
