package controlplane

import (
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"defaults", Config{DataDir: "d"}, ""},
		{"no data dir", Config{}, "no data dir"},
		{"listen without port", Config{DataDir: "d", Listen: "127.0.0.1"}, "--listen"},
		{"listen host name", Config{DataDir: "d", Listen: "localhost:6443"}, "must be an IP"},
		{"listen bad port", Config{DataDir: "d", Listen: "127.0.0.1:70000"}, "bad port"},
		{"etcd not a URL", Config{DataDir: "d", EtcdServers: []string{"127.0.0.1:2379"}}, "not an etcd client URL"},
		{"etcd ok", Config{DataDir: "d", EtcdServers: []string{"http://127.0.0.1:2379", "https://10.0.0.1:2379"}}, ""},
		{"bad service cidr", Config{DataDir: "d", ServiceCIDR: "10.0.0.0"}, "service CIDR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tc.cfg.Listen == "" || tc.cfg.ServiceCIDR == "" || tc.cfg.ReadyTimeout == 0 {
					t.Fatalf("defaults not filled in: %+v", tc.cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.err)
			}
		})
	}
}

func TestServerURL(t *testing.T) {
	for listen, want := range map[string]string{
		"127.0.0.1:6443": "https://127.0.0.1:6443",
		"0.0.0.0:6443":   "https://127.0.0.1:6443",
		"[::]:6443":      "https://[::1]:6443",
		"10.0.0.5:443":   "https://10.0.0.5:443",
	} {
		c := Config{DataDir: "d", Listen: listen}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := c.serverURL(); got != want {
			t.Errorf("serverURL(%s) = %s, want %s", listen, got, want)
		}
	}
}

// The controller manager's flags turn off every storage controller of
// the release, by the names kube-controller-manager knows.
func TestControllerManagerArgsDisableStorageControllers(t *testing.T) {
	c := Config{DataDir: "d"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	p := &PKI{Dir: "pki"}
	var controllers string
	for _, a := range c.controllerManagerArgs(p, "kc") {
		if v, ok := strings.CutPrefix(a, "--controllers="); ok {
			controllers = v
		}
	}
	for _, name := range []string{"persistentvolume-binder-controller", "persistentvolume-attach-detach-controller", "persistentvolume-expander-controller", "persistentvolumeclaim-protection-controller", "persistentvolume-protection-controller", "ephemeral-volume-controller", "volumeattributesclass-protection-controller", "selinux-warning-controller"} {
		if !strings.Contains(","+controllers+",", ",-"+name+",") {
			t.Errorf("--controllers=%s does not turn off %s", controllers, name)
		}
	}
}
