package main

import "testing"

func TestCSIMetricsListenLoopbackUnlessAsked(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		remote bool
		ok     bool
	}{
		{"127.0.0.1:9808", false, true},
		{"[::1]:9808", false, true},
		{"localhost:9808", false, true},
		{":9808", false, false},
		{"0.0.0.0:9808", false, false},
		{"10.1.2.3:9808", false, false},
		{":9808", true, true},
		{"10.1.2.3:9808", true, true},
		{"nonsense", true, false},
	} {
		f := csiFlags{poolDir: "/tmp/p", metrics: tc.addr, metricsRemote: tc.remote}
		_, err := f.config()
		if (err == nil) != tc.ok {
			t.Errorf("--metrics-listen %q (remote %v): err %v, want ok=%v", tc.addr, tc.remote, err, tc.ok)
		}
	}
}
