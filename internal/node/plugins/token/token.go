package token

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

const (
	// maxAge is how long a token is used at most before a new one is
	// requested, whatever its expiry.
	maxAge = 24 * time.Hour
	// refreshAt is the part of a token's life after which it is renewed.
	refreshAt = 0.8
)

// Config is what a Manager needs.
type Config struct {
	// Client requests tokens as the node's identity.
	Client kubernetes.Interface
	// Log is the manager's logger; slog.Default() when nil.
	Log *slog.Logger
	// Now is the clock; time.Now when nil. Tests set it.
	Now func() time.Time
	// AfterFunc schedules a refresh; time.AfterFunc when nil.
	AfterFunc func(d time.Duration, f func()) Timer
}

// Timer is what AfterFunc returns.
type Timer interface{ Stop() bool }

// Validate checks the config.
func (c *Config) Validate() error {
	if c.Client == nil {
		return fmt.Errorf("token manager: Client is required")
	}
	return nil
}

// Request names one token: for a service account of a pod, bound to
// that pod.
type Request struct {
	Pod *corev1.Pod
	// Audience is the token's audience; "" means the API server's.
	Audience string
	// ExpirationSeconds is the life asked for; nil leaves it to the API
	// server.
	ExpirationSeconds *int64
}

type key struct {
	namespace, serviceAccount, audience string
	expirationSeconds                   int64
	podName                             string
	podUID                              types.UID
}

type entry struct {
	token     string
	refreshAt time.Time
	timer     Timer
	volumes   map[string]bool
}

// Manager requests and caches service account tokens. See the package
// doc.
type Manager struct {
	cfg Config

	mu       sync.Mutex
	tokens   map[key]*entry
	handlers []func(volumeName string)
}

// New returns a Manager.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AfterFunc == nil {
		cfg.AfterFunc = func(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
	}
	return &Manager{cfg: cfg, tokens: map[key]*entry{}}, nil
}

// OnChange registers fn to be called with the name of a volume whose
// token is due for renewal. fn runs on a timer goroutine and must not
// block.
func (m *Manager) OnChange(fn func(volumeName string)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.handlers = append(m.handlers, fn)
}

// Token returns a token for req, for the volume volumeName: the cached
// one while it is younger than 80% of its life and than 24 h, else a new
// one from the TokenRequest API. volumeName is told through OnChange when
// the token is due.
func (m *Manager) Token(ctx context.Context, volumeName string, req Request) (string, error) {
	pod := req.Pod
	k := key{namespace: pod.Namespace, serviceAccount: pod.Spec.ServiceAccountName, audience: req.Audience, podName: pod.Name, podUID: pod.UID}
	if req.ExpirationSeconds != nil {
		k.expirationSeconds = *req.ExpirationSeconds
	}
	now := m.cfg.Now()
	m.mu.Lock()
	e := m.tokens[k]
	if e != nil && now.Before(e.refreshAt) {
		e.volumes[volumeName] = true
		tok := e.token
		m.mu.Unlock()
		return tok, nil
	}
	m.mu.Unlock()

	sa := k.serviceAccount
	if sa == "" {
		sa = "default"
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: req.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID},
	}}
	if req.Audience != "" {
		tr.Spec.Audiences = []string{req.Audience}
	}
	out, err := m.cfg.Client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, tr, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("request token of service account %s/%s: %w", pod.Namespace, sa, err)
	}
	if out.Status.Token == "" {
		return "", fmt.Errorf("request token of service account %s/%s: the API returned no token", pod.Namespace, sa)
	}
	due := refreshTime(now, out.Status.ExpirationTimestamp.Time)

	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.tokens[k]; old != nil {
		if old.timer != nil {
			old.timer.Stop()
		}
		e = old
	} else {
		e = &entry{volumes: map[string]bool{}}
		m.tokens[k] = e
	}
	e.token, e.refreshAt = out.Status.Token, due
	e.volumes[volumeName] = true
	e.timer = m.cfg.AfterFunc(due.Sub(now), func() { m.due(k, e) })
	m.cfg.Log.Debug("requested service account token", "namespace", pod.Namespace, "serviceAccount", sa, "pod", pod.Name, "refreshAt", due)
	return out.Status.Token, nil
}

// refreshTime is when a token got at now and expiring at exp is renewed:
// at 80% of its life, and after 24 h at the latest.
func refreshTime(now, exp time.Time) time.Time {
	life := exp.Sub(now)
	if life < 0 {
		life = 0
	}
	d := time.Duration(float64(life) * refreshAt)
	if d > maxAge {
		d = maxAge
	}
	return now.Add(d)
}

// due tells the volumes of e that their token is to be renewed.
func (m *Manager) due(k key, e *entry) {
	m.mu.Lock()
	if m.tokens[k] != e {
		m.mu.Unlock()
		return
	}
	e.refreshAt = time.Time{} // due now, whatever the clock says
	volumes := make([]string, 0, len(e.volumes))
	for v := range e.volumes {
		volumes = append(volumes, v)
	}
	handlers := append([]func(string){}, m.handlers...)
	m.mu.Unlock()
	for _, v := range volumes {
		for _, fn := range handlers {
			fn(v)
		}
	}
}

// Release forgets the tokens of volumeName once no other volume uses
// them.
func (m *Manager) Release(volumeName string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, e := range m.tokens {
		delete(e.volumes, volumeName)
		if len(e.volumes) == 0 {
			if e.timer != nil {
				e.timer.Stop()
			}
			delete(m.tokens, k)
		}
	}
}

// Cached reports how many tokens are held, for tests and metrics.
func (m *Manager) Cached() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tokens)
}
