package controller

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/cert"
)

// The user and group the API server gives a request without credentials,
// which kube-controller-manager's delegated authentication (anonymous
// allowed) gives it too.
const (
	anonymousUser  = "system:anonymous"
	anonymousGroup = "system:unauthenticated"
)

// metricsAuth lets a request through to next only as kube-controller-
// manager's secure port would: its bearer token authenticated by a
// TokenReview (no token: system:anonymous), then its user authorized by a
// SubjectAccessReview for the path and verb, a non-resource request. A
// token the API does not accept gets 401, a user without the right 403,
// each as an API Status with upstream's message.
type metricsAuth struct {
	client kubernetes.Interface
	next   http.Handler
	log    *slog.Logger
}

func (a *metricsAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	user := authnv1.UserInfo{Username: anonymousUser, Groups: []string{anonymousGroup}}
	if token, ok := bearerToken(r); ok {
		tr, err := a.client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
		if err != nil {
			a.log.Error("metrics: token review failed", "err", err)
			writeStatus(w, apierrors.NewInternalError(errors.New("token review failed")))
			return
		}
		if !tr.Status.Authenticated {
			writeStatus(w, apierrors.NewUnauthorized("Unauthorized"))
			return
		}
		user = tr.Status.User
	}
	verb := "get"
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		verb = strings.ToLower(r.Method)
	}
	extra := map[string]authzv1.ExtraValue{}
	for k, v := range user.Extra {
		extra[k] = authzv1.ExtraValue(v)
	}
	sar, err := a.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: user.Username, UID: user.UID, Groups: user.Groups, Extra: extra,
		NonResourceAttributes: &authzv1.NonResourceAttributes{Path: r.URL.Path, Verb: verb},
	}}, metav1.CreateOptions{})
	if err != nil {
		a.log.Error("metrics: access review failed", "err", err)
		writeStatus(w, apierrors.NewInternalError(errors.New("access review failed")))
		return
	}
	if !sar.Status.Allowed {
		msg := fmt.Sprintf("User %q cannot %s path %q", user.Username, verb, r.URL.Path)
		if sar.Status.Reason != "" {
			msg += ": " + sar.Status.Reason
		}
		writeStatus(w, apierrors.NewForbidden(schema.GroupResource{}, "", errors.New(msg)))
		return
	}
	a.next.ServeHTTP(w, r)
}

// bearerToken is the request's "Authorization: Bearer" token.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	return token, ok && strings.EqualFold(scheme, "bearer") && token != ""
}

func writeStatus(w http.ResponseWriter, err *apierrors.StatusError) {
	st := err.ErrStatus
	st.Kind, st.APIVersion = "Status", "v1"
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(int(st.Code))
	_ = json.NewEncoder(w).Encode(st)
}

// selfSignedTLS is a serving configuration with a certificate made in
// memory for the listener's address, as kube-controller-manager makes
// one when it is given none: scrapers verify the caller, not the server.
func selfSignedTLS(addr string) (*tls.Config, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = append(ips, ip)
	}
	certPEM, keyPEM, err := cert.GenerateSelfSignedCertKey("localhost", ips, nil)
	if err != nil {
		return nil, fmt.Errorf("self-signed serving certificate: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("self-signed serving certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}
