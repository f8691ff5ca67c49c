package pods

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// runHandler runs a postStart or preStop hook: exec through the runtime,
// an HTTP GET, or a sleep. timeout (seconds) bounds it; 0 is no bound.
// It returns the hook's output for an exec that failed.
func (pw *podWorker) runHandler(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id string, h *corev1.LifecycleHandler, timeout int64) (string, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(timeout)*time.Second)
		defer cancel()
	}
	switch {
	case h.Exec != nil:
		stdout, stderr, err := pw.w.cfg.Runtime.ExecSync(ctx, id, h.Exec.Command, time.Duration(timeout)*time.Second)
		if err != nil {
			return string(stdout) + string(stderr), fmt.Errorf("exec %q: %w", h.Exec.Command, err)
		}
		return "", nil
	case h.HTTPGet != nil:
		u, err := httpURL(h.HTTPGet, pw.w.cfg.NodeIP, c)
		if err != nil {
			return "", err
		}
		code, _, err := httpGet(ctx, u, h.HTTPGet.HTTPHeaders)
		if err != nil {
			return "", err
		}
		if code < 200 || code >= 400 {
			return "", fmt.Errorf("HTTP lifecycle hook (%s) for Container %q in Pod %q failed - error: received status code %d", h.HTTPGet.Path, c.Name, formatPod(pod), code)
		}
		return "", nil
	case h.Sleep != nil:
		t := time.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		return "", nil
	}
	// tcpSocket hooks are accepted for compatibility and do nothing,
	// as upstream.
	return "", nil
}

// resolvePort returns a numeric port, looking a named one up in the
// container's ports.
func resolvePort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		if p.IntVal <= 0 || p.IntVal > 65535 {
			return 0, fmt.Errorf("invalid port number: %v", p.IntVal)
		}
		return int(p.IntVal), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("couldn't find port: %v in %v", p.StrVal, c.Name)
}

// httpURL builds the URL of an httpGet probe or hook; the host defaults
// to the pod's address, the node's.
func httpURL(g *corev1.HTTPGetAction, podIP string, c *corev1.Container) (*url.URL, error) {
	port, err := resolvePort(g.Port, c)
	if err != nil {
		return nil, err
	}
	host := g.Host
	if host == "" {
		host = podIP
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := g.Path
	if path != "" && !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u, err := url.Parse(scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)) + path)
	if err != nil {
		return nil, err
	}
	return u, nil
}

// httpGet does one GET with the given headers, certificates unchecked
// as upstream's probes; it returns the status code and up to 10 KiB of
// the body.
func httpGet(ctx context.Context, u *url.URL, headers []corev1.HTTPHeader) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("User-Agent", "kube-probe/1.37")
	req.Header.Set("Accept", "*/*")
	for _, h := range headers {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Set(h.Name, h.Value)
	}
	client := &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // upstream's probes do not verify
			DisableKeepAlives: true,
			Proxy:             nil,
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	buf := make([]byte, 10<<10)
	n, _ := resp.Body.Read(buf)
	return resp.StatusCode, string(buf[:n]), nil
}
