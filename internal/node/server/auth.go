package server

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The caches' lifetimes are the kubelet's defaults:
// --authentication-token-webhook-cache-ttl 2m, and the authorization
// webhook's 5m for an allowed and 30s for a denied review. A failed token
// review is remembered briefly so that a client retrying a bad token does
// not cost one review per request.
const (
	tokenCacheTTL        = 2 * time.Minute
	tokenFailureCacheTTL = 10 * time.Second
	allowCacheTTL        = 5 * time.Minute
	denyCacheTTL         = 30 * time.Second
)

// userInfo is an authenticated caller.
type userInfo struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string]authorizationv1.ExtraValue
}

// attributes is one authorization question about a request: may user do
// verb on nodes/<subresource> of this node?
type attributes struct {
	User        *userInfo
	Verb        string
	Subresource string
	Name        string
}

// authenticator identifies a request's caller: an x509 client certificate
// of the cluster CA, else a bearer token that the API server vouches for
// through a TokenReview. Neither is anonymous: ok is false.
type authenticator struct {
	clientCAs *x509.CertPool
	reviews   kubernetes.Interface
	cache     ttlCache[*userInfo]
}

// authenticate returns the caller, ok false when the request carries no
// usable credential, and an error when the credential could not be
// checked or is invalid. As kube-apiserver's union of authenticators, a
// client certificate that does not verify leaves the bearer token to
// decide.
func (a *authenticator) authenticate(r *http.Request) (*userInfo, bool, error) {
	var certErr error
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		u, ok, err := a.x509User(r.TLS.PeerCertificates)
		if ok {
			return u, true, nil
		}
		certErr = err
	}
	scheme, token, found := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	token = strings.TrimSpace(token)
	if !found || !strings.EqualFold(scheme, "bearer") || token == "" {
		return nil, false, certErr
	}
	u, ok, err := a.tokenUser(r.Context(), token)
	if err != nil || ok {
		return u, ok, err
	}
	return nil, false, certErr
}

// x509User verifies the client's chain against the cluster CA for client
// use, as kube-apiserver's x509 authenticator does: the user is the
// subject's common name, the groups its organizations.
func (a *authenticator) x509User(chain []*x509.Certificate) (*userInfo, bool, error) {
	opts := x509.VerifyOptions{
		Roots:         a.clientCAs,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, c := range chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := chain[0].Verify(opts); err != nil {
		return nil, false, fmt.Errorf("verifying client certificate: %w", err)
	}
	subject := chain[0].Subject
	if subject.CommonName == "" {
		return nil, false, errors.New("client certificate has no common name")
	}
	return &userInfo{Name: subject.CommonName, Groups: subject.Organization}, true, nil
}

// tokenUser asks the API server who holds token, remembering the answer
// for a while under the token's hash (never the token itself).
func (a *authenticator) tokenUser(ctx context.Context, token string) (*userInfo, bool, error) {
	key := fmt.Sprintf("%x", sha256.Sum256([]byte(token)))
	if u, ok := a.cache.get(key); ok {
		return u, u != nil, nil
	}
	review, err := a.reviews.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, false, fmt.Errorf("token review: %w", err)
	}
	if !review.Status.Authenticated {
		a.cache.put(key, nil, tokenFailureCacheTTL)
		return nil, false, nil
	}
	su := review.Status.User
	u := &userInfo{Name: su.Username, UID: su.UID, Groups: su.Groups}
	if len(su.Extra) > 0 {
		u.Extra = make(map[string]authorizationv1.ExtraValue, len(su.Extra))
		for k, v := range su.Extra {
			u.Extra[k] = authorizationv1.ExtraValue(v)
		}
	}
	a.cache.put(key, u, tokenCacheTTL)
	return u, true, nil
}

// authorizer asks the API server through SubjectAccessReviews, as the
// kubelet's webhook authorizer does, remembering each answer for a while.
type authorizer struct {
	reviews kubernetes.Interface
	cache   ttlCache[bool]
}

// authorize answers whether attrs is allowed.
func (a *authorizer) authorize(ctx context.Context, attrs attributes) (bool, error) {
	spec := authorizationv1.SubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb:        attrs.Verb,
			Group:       "",
			Version:     "v1",
			Resource:    "nodes",
			Subresource: attrs.Subresource,
			Name:        attrs.Name,
		},
		User:   attrs.User.Name,
		UID:    attrs.User.UID,
		Groups: attrs.User.Groups,
		Extra:  attrs.User.Extra,
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return false, fmt.Errorf("subject access review: %w", err)
	}
	key := string(raw)
	if allowed, ok := a.cache.get(key); ok {
		return allowed, nil
	}
	review, err := a.reviews.AuthorizationV1().SubjectAccessReviews().Create(ctx,
		&authorizationv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("subject access review: %w", err)
	}
	allowed := review.Status.Allowed && !review.Status.Denied
	ttl := denyCacheTTL
	if allowed {
		ttl = allowCacheTTL
	}
	a.cache.put(key, allowed, ttl)
	return allowed, nil
}

// ttlCache is a small map whose entries expire. Expired entries are
// dropped when the map is written, so it stays as large as the set of
// callers seen within the longest lifetime.
type ttlCache[V any] struct {
	mu      sync.Mutex
	entries map[string]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v       V
	expires time.Time
}

func (c *ttlCache[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !time.Now().Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[V]) put(key string, v V, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.entries == nil {
		c.entries = make(map[string]ttlEntry[V])
	}
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	c.entries[key] = ttlEntry[V]{v: v, expires: now.Add(ttl)}
}
