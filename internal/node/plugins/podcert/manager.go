package podcert

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// Config is what a Manager needs.
type Config struct {
	// Client creates and reads PodCertificateRequests as the node.
	Client kubernetes.Interface
	// NodeName is this node.
	NodeName string
	// Recorder emits events on pods; nil emits none.
	Recorder record.EventRecorder
	// Log is the manager's logger; slog.Default() when nil.
	Log *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.Client == nil || c.NodeName == "" {
		return fmt.Errorf("pod certificate manager: Client and NodeName are required")
	}
	return nil
}

// ErrPending is wrapped by Credentials while the request waits for its
// signer.
var ErrPending = errors.New("waiting for the signer to issue the certificate")

// key names one podCertificate source of one volume.
type key struct {
	volume string
	index  int
}

// source is the state of one source: the credentials in use (nil before
// the first issue), and the request in flight with its private key.
// A source is only used by the SetUp of its volume, which the volume
// manager never runs twice at once.
type source struct {
	keyPEM, chain  []byte
	refreshAt      time.Time
	pendingName    string
	pendingKey     []byte
	namespace      string
	permanent      error // denied or failed
	timer          *time.Timer
	eventedPending bool
}

// Manager issues pod certificates. See the package doc.
type Manager struct {
	cfg Config

	mu       sync.Mutex
	records  map[key]*source
	byPCR    map[types.NamespacedName]key
	informer cache.SharedIndexInformer
	stop     context.CancelFunc
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
	return &Manager{cfg: cfg, records: map[key]*source{}, byPCR: map[types.NamespacedName]key{}}, nil
}

// OnChange registers fn, called with a volume's name when one of its
// requests was answered or its certificate is due for renewal. fn must
// not block.
func (m *Manager) OnChange(fn func(volumeName string)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.handlers = append(m.handlers, fn)
}

// Credentials returns the private key (PEM) and certificate chain for
// source index of volumeName in pod. The first call makes a key and a
// PodCertificateRequest; until the signer issues it, the error wraps
// ErrPending. A denied or failed request is a permanent error with
// upstream's message.
func (m *Manager) Credentials(ctx context.Context, volumeName string, pod *corev1.Pod, index int, src *corev1.PodCertificateProjection) ([]byte, []byte, error) {
	m.ensureWatch()
	k := key{volumeName, index}
	m.mu.Lock()
	rec := m.records[k]
	if rec == nil {
		rec = &source{namespace: pod.Namespace}
		m.records[k] = rec
	}
	m.mu.Unlock()

	if rec.permanent != nil {
		return nil, nil, rec.permanent
	}
	if rec.pendingName != "" {
		if err := m.poll(ctx, pod, k, rec); err != nil {
			return nil, nil, err
		}
	}
	now := m.cfg.Now()
	due := rec.chain == nil || !now.Before(rec.refreshAt)
	if due && rec.pendingName == "" {
		if err := m.request(ctx, pod, k, rec, src); err != nil {
			return nil, nil, err
		}
	}
	if rec.chain == nil {
		if !rec.eventedPending && m.cfg.Recorder != nil {
			m.cfg.Recorder.Eventf(pod, corev1.EventTypeWarning, "CertificatePending",
				"PodCertificateRequest %s/%s waits for signer %q to issue a certificate", pod.Namespace, rec.pendingName, src.SignerName)
			rec.eventedPending = true
		}
		return nil, nil, fmt.Errorf("PodCertificateRequest %s/%s for signer %q: %w", pod.Namespace, rec.pendingName, src.SignerName, ErrPending)
	}
	return rec.keyPEM, rec.chain, nil
}

// request makes a key and a PodCertificateRequest for it.
func (m *Manager) request(ctx context.Context, pod *corev1.Pod, k key, rec *source, src *corev1.PodCertificateProjection) error {
	saName := pod.Spec.ServiceAccountName
	if saName == "" {
		saName = "default"
	}
	sa, err := m.cfg.Client.CoreV1().ServiceAccounts(pod.Namespace).Get(ctx, saName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("while fetching service account: %w", err)
	}
	node, err := m.cfg.Client.CoreV1().Nodes().Get(ctx, m.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("while getting node object: %w", err)
	}
	priv, csr, err := generateKeyAndProof(src.KeyType)
	if err != nil {
		return fmt.Errorf("while generating keypair: %w", err)
	}
	keyPEM, err := pemEncodeKey(priv)
	if err != nil {
		return fmt.Errorf("while PEM-encoding private key: %w", err)
	}
	pcr := &certificatesv1.PodCertificateRequest{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       pod.Namespace,
			GenerateName:    "req-",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}},
		},
		Spec: certificatesv1.PodCertificateRequestSpec{
			SignerName:                src.SignerName,
			PodName:                   pod.Name,
			PodUID:                    pod.UID,
			ServiceAccountName:        saName,
			ServiceAccountUID:         sa.UID,
			NodeName:                  types.NodeName(m.cfg.NodeName),
			NodeUID:                   node.UID,
			MaxExpirationSeconds:      src.MaxExpirationSeconds,
			StubPKCS10Request:         csr,
			UnverifiedUserAnnotations: src.UserAnnotations,
		},
	}
	created, err := m.cfg.Client.CertificatesV1().PodCertificateRequests(pod.Namespace).Create(ctx, pcr, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("while creating initial PodCertificateRequest: while creating on API: %w", err)
	}
	m.mu.Lock()
	rec.pendingName, rec.pendingKey = created.Name, keyPEM
	m.byPCR[types.NamespacedName{Namespace: pod.Namespace, Name: created.Name}] = k
	m.mu.Unlock()
	m.cfg.Log.Debug("created PodCertificateRequest", "namespace", pod.Namespace, "name", created.Name, "signer", src.SignerName)
	// The signer may have answered already.
	return m.poll(ctx, pod, k, rec)
}

// poll reads the pending request and moves to its answer.
func (m *Manager) poll(ctx context.Context, pod *corev1.Pod, k key, rec *source) error {
	name := types.NamespacedName{Namespace: rec.namespace, Name: rec.pendingName}
	pcr, err := m.lookup(ctx, name)
	if apierrors.IsNotFound(err) {
		// Deleted by someone (or not yet in the watch): ask again later.
		m.mu.Lock()
		delete(m.byPCR, name)
		rec.pendingName, rec.pendingKey = "", nil
		m.mu.Unlock()
		return fmt.Errorf("PodCertificateRequest %q appears to have been deleted", name.String())
	}
	if err != nil {
		return fmt.Errorf("while getting PodCertificateRequest %q: %w", name.String(), err)
	}
	for _, cond := range pcr.Status.Conditions {
		switch cond.Type {
		case certificatesv1.PodCertificateRequestConditionTypeDenied, certificatesv1.PodCertificateRequestConditionTypeFailed:
			verb := "denied"
			if cond.Type == certificatesv1.PodCertificateRequestConditionTypeFailed {
				verb = "failed"
			}
			if m.cfg.Recorder != nil {
				m.cfg.Recorder.Eventf(pod, corev1.EventTypeWarning, cond.Type,
					"PodCertificateRequest %s was %s, reason=%q, message=%q", name.String(), verb, cond.Reason, cond.Message)
			}
			m.mu.Lock()
			delete(m.byPCR, name)
			rec.pendingName, rec.pendingKey = "", nil
			if rec.chain == nil {
				rec.permanent = fmt.Errorf("PodCertificateRequest was permanently %s: reason=%q message=%q", verb, cond.Reason, cond.Message)
			}
			m.mu.Unlock()
			if rec.permanent != nil {
				return rec.permanent
			}
			return nil
		case certificatesv1.PodCertificateRequestConditionTypeIssued:
			if pcr.Status.BeginRefreshAt == nil || pcr.Status.CertificateChain == "" {
				return fmt.Errorf("PodCertificateRequest %s is issued without a certificate chain or beginRefreshAt", name.String())
			}
			m.mu.Lock()
			delete(m.byPCR, name)
			rec.keyPEM, rec.chain = rec.pendingKey, cleanChain([]byte(pcr.Status.CertificateChain))
			rec.refreshAt = pcr.Status.BeginRefreshAt.Time
			rec.pendingName, rec.pendingKey, rec.eventedPending = "", nil, false
			if rec.timer != nil {
				rec.timer.Stop()
			}
			volume := k.volume
			rec.timer = time.AfterFunc(rec.refreshAt.Sub(m.cfg.Now()), func() { m.notify(volume) })
			m.mu.Unlock()
			return nil
		}
	}
	return nil // still pending
}

// lookup reads a request from the watch, or from the API until the watch
// has listed.
func (m *Manager) lookup(ctx context.Context, name types.NamespacedName) (*certificatesv1.PodCertificateRequest, error) {
	if m.informer.HasSynced() {
		item, exists, err := m.informer.GetStore().GetByKey(name.String())
		if err != nil {
			return nil, err
		}
		if exists {
			return item.(*certificatesv1.PodCertificateRequest), nil
		}
	}
	return m.cfg.Client.CertificatesV1().PodCertificateRequests(name.Namespace).Get(ctx, name.Name, metav1.GetOptions{})
}

// ensureWatch starts the watch of this node's requests (field selector
// spec.nodeName, as upstream's kubelet).
func (m *Manager) ensureWatch() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.informer != nil {
		return
	}
	sel := fields.OneTermEqualSelector("spec.nodeName", m.cfg.NodeName).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return m.cfg.Client.CertificatesV1().PodCertificateRequests(metav1.NamespaceAll).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return m.cfg.Client.CertificatesV1().PodCertificateRequests(metav1.NamespaceAll).Watch(ctx, o)
		},
	}
	inf := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, m.cfg.Client), &certificatesv1.PodCertificateRequest{}, 0, cache.Indexers{})
	changed := func(obj any) {
		pcr, ok := obj.(*certificatesv1.PodCertificateRequest)
		if !ok {
			return
		}
		m.mu.Lock()
		k, tracked := m.byPCR[types.NamespacedName{Namespace: pcr.Namespace, Name: pcr.Name}]
		m.mu.Unlock()
		if tracked {
			m.notify(k.volume)
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: changed, UpdateFunc: func(_, obj any) { changed(obj) }})
	ctx, cancel := context.WithCancel(context.Background())
	m.informer, m.stop = inf, cancel
	go inf.RunWithContext(ctx)
}

func (m *Manager) notify(volume string) {
	m.mu.Lock()
	handlers := append([]func(string){}, m.handlers...)
	m.mu.Unlock()
	for _, fn := range handlers {
		fn(volume)
	}
}

// Release forgets the credentials of volumeName's sources. The requests
// stay in the API; the pod owns them and they go with it.
func (m *Manager) Release(volumeName string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, rec := range m.records {
		if k.volume != volumeName {
			continue
		}
		if rec.timer != nil {
			rec.timer.Stop()
		}
		delete(m.byPCR, types.NamespacedName{Namespace: rec.namespace, Name: rec.pendingName})
		delete(m.records, k)
	}
}

// cleanChain keeps only the PEM blocks of a chain, as CERTIFICATE blocks
// without headers, as upstream projects it.
func cleanChain(in []byte) []byte {
	var out bytes.Buffer
	rest := in
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out.Bytes()
		}
		out.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.Bytes}))
	}
}
