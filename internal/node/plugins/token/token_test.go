package token

import (
	"context"
	"fmt"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestRefreshTime(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		life, want time.Duration
	}{
		{time.Hour, 48 * time.Minute},
		{10 * time.Minute, 8 * time.Minute},
		{48 * time.Hour, 24 * time.Hour},       // capped at 24 h
		{365 * 24 * time.Hour, 24 * time.Hour}, // an extended token
		{-time.Minute, 0},                      // already expired: now
	} {
		if got := refreshTime(now, now.Add(tc.life)).Sub(now); got != tc.want {
			t.Errorf("life %v: refresh after %v, want %v", tc.life, got, tc.want)
		}
	}
}

type nopTimer struct{ stopped *int }

func (n nopTimer) Stop() bool { *n.stopped++; return true }

func TestCacheShareAndRelease(t *testing.T) {
	client := fake.NewClientset()
	requests := 0
	client.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		requests++
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenRequest).DeepCopy()
		tr.Status.Token = fmt.Sprint("t", requests)
		tr.Status.ExpirationTimestamp = metav1.NewTime(time.Now().Add(time.Hour))
		return true, tr, nil
	})
	now := time.Now()
	stopped := 0
	m, err := New(Config{Client: client, Now: func() time.Time { return now },
		AfterFunc: func(time.Duration, func()) Timer { return nopTimer{&stopped} }})
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}}
	ctx := context.Background()
	a, _ := m.Token(ctx, "vol-a", Request{Pod: pod, ExpirationSeconds: ptr(int64(3600))})
	b, _ := m.Token(ctx, "vol-b", Request{Pod: pod, ExpirationSeconds: ptr(int64(3600))})
	c, _ := m.Token(ctx, "vol-c", Request{Pod: pod, Audience: "other", ExpirationSeconds: ptr(int64(3600))})
	if a != b || a == c || requests != 2 {
		t.Errorf("tokens %q %q %q after %d requests: same request must share, another audience must not", a, b, c, requests)
	}
	now = now.Add(50 * time.Minute) // past 80% of the hour
	if d, _ := m.Token(ctx, "vol-a", Request{Pod: pod, ExpirationSeconds: ptr(int64(3600))}); d == a {
		t.Error("token not renewed after 80% of its life")
	}
	m.Release("vol-a")
	if m.Cached() != 2 {
		t.Errorf("released a token another volume holds: %d cached", m.Cached())
	}
	m.Release("vol-b")
	m.Release("vol-c")
	if m.Cached() != 0 || stopped == 0 {
		t.Errorf("after releasing all: %d cached, %d timers stopped", m.Cached(), stopped)
	}
	if _, err := New(Config{}); err == nil {
		t.Error("a config without a client was accepted")
	}
}

func ptr[T any](v T) *T { return &v }
