package agent

import (
	"testing"
)

// The agent's API limits default to the kubelet's and refuse what would
// stop it from talking to the API at all.
func TestConfigAPILimits(t *testing.T) {
	cases := []struct {
		name                  string
		qps, eventQPS         float32
		burst, eventBurst     int
		wantQPS, wantEventQPS float32
		wantErr               bool
	}{
		{name: "kubelet defaults", wantQPS: 50, wantEventQPS: 50},
		{name: "given", qps: 5, burst: 10, eventQPS: 1, eventBurst: 2, wantQPS: 5, wantEventQPS: 1},
		{name: "negative qps", qps: -1, burst: 10, wantErr: true},
		{name: "qps without burst", qps: 5, wantErr: true},
		{name: "event qps without burst", eventQPS: 5, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{NodeName: "n", RootDir: t.TempDir() + "/kubelet", Kubeconfig: "/k",
				KubeAPIQPS: tc.qps, KubeAPIBurst: tc.burst, EventQPS: tc.eventQPS, EventBurst: tc.eventBurst}
			err := c.Validate()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Validate: %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if c.KubeAPIQPS != tc.wantQPS || c.EventQPS != tc.wantEventQPS || c.KubeAPIBurst < 1 || c.EventBurst < 1 {
				t.Errorf("limits %v/%d, events %v/%d", c.KubeAPIQPS, c.KubeAPIBurst, c.EventQPS, c.EventBurst)
			}
		})
	}
}
