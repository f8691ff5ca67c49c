package controller

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestMetricsAuth: /metrics answers only a caller the API authenticates
// and authorizes for get /metrics, as kube-controller-manager's secure
// port; everyone else gets upstream's Status and no metrics.
func TestMetricsAuth(t *testing.T) {
	tests := []struct {
		name     string
		header   string
		wantCode int
		wantMsg  string
		// wantUser is the user the access review asks about; "" when
		// there must be none.
		wantUser string
	}{
		{name: "no credentials", wantCode: 403, wantMsg: `forbidden: User "system:anonymous" cannot get path "/metrics"`, wantUser: "system:anonymous"},
		{name: "unknown token", header: "Bearer bogus", wantCode: 401, wantMsg: "Unauthorized"},
		{name: "user without the right", header: "Bearer nobody-token", wantCode: 403, wantMsg: `forbidden: User "nobody" cannot get path "/metrics"`, wantUser: "nobody"},
		{name: "monitoring user", header: "Bearer prometheus-token", wantCode: 200, wantUser: "prometheus"},
		{name: "basic auth is no bearer token", header: "Basic cHJvbWV0aGV1cy10b2tlbg==", wantCode: 403, wantUser: "system:anonymous"},
	}
	users := map[string]string{"nobody-token": "nobody", "prometheus-token": "prometheus"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewSimpleClientset()
			var reviewed []authzv1.SubjectAccessReviewSpec
			client.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
				tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview).DeepCopy()
				if u, ok := users[tr.Spec.Token]; ok {
					tr.Status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: u, Groups: []string{"system:authenticated"}}}
				}
				return true, tr, nil
			})
			client.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
				sar := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview).DeepCopy()
				reviewed = append(reviewed, sar.Spec)
				na := sar.Spec.NonResourceAttributes
				sar.Status.Allowed = sar.Spec.User == "prometheus" && na != nil && na.Path == "/metrics" && na.Verb == "get"
				return true, sar, nil
			})
			h := &metricsAuth{client: client, log: slog.New(slog.DiscardHandler), next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte("the_metrics 1\n"))
			})}
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)

			if rec.Code != tc.wantCode {
				t.Fatalf("code %d (%s), want %d", rec.Code, rec.Body, tc.wantCode)
			}
			if tc.wantCode == 200 {
				if rec.Body.String() != "the_metrics 1\n" {
					t.Errorf("body %q", rec.Body)
				}
			} else {
				var st metav1.Status
				if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
					t.Fatalf("body %q is no Status: %v", rec.Body, err)
				}
				if st.Kind != "Status" || int(st.Code) != tc.wantCode || (tc.wantMsg != "" && st.Message != tc.wantMsg) {
					t.Errorf("status %+v, want code %d message %q", st, tc.wantCode, tc.wantMsg)
				}
			}
			var asked []string
			for _, s := range reviewed {
				asked = append(asked, s.User)
			}
			if want := []string{tc.wantUser}; tc.wantUser == "" && len(asked) != 0 || tc.wantUser != "" && !slices.Equal(asked, want) {
				t.Errorf("access reviews for %q, want %q", asked, tc.wantUser)
			}
		})
	}
}
