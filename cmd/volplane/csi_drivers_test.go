package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"volplane/internal/controller/csicontroller"
)

// --csi-controller names drivers whose controller side runs in process;
// a bad value is an error of the flag, quoting it.
func TestCSIControllerFlag(t *testing.T) {
	for _, tc := range []struct {
		name        string
		args        []string
		want        []string // controller names
		wantErr     string
		wantUpError string
	}{
		{"none", nil, nil, "", ""},
		{"two", []string{"--csi-controller=hostpath.csi.k8s.io=unix:///csi/hp.sock", "--csi-controller", "b.example.com=/run/b.sock"},
			[]string{"csi-controller-hostpath.csi.k8s.io", "csi-controller-b.example.com"}, "", ""},
		{"no equals", []string{"--csi-controller=unix:///x.sock"}, nil, `invalid argument "unix:///x.sock" for "--csi-controller" flag: want NAME=unix:///path`, ""},
		{"no name", []string{"--csi-controller==unix:///x.sock"}, nil, "want NAME=unix:///path", ""},
		{"bad name", []string{"--csi-controller=-bad=unix:///x.sock"}, nil, `"-bad" is not a CSI driver name`, ""},
		{"tcp", []string{"--csi-controller=a=tcp://1.2.3.4:5"}, nil, "only unix sockets are supported", ""},
		{"relative", []string{"--csi-controller=a=unix://x.sock"}, nil, "must be absolute", ""},
		{"twice", []string{"--csi-controller=a=/a.sock", "--csi-controller=a=/b.sock"}, nil, "driver a is named twice", ""},
		{"the built-in driver in up", []string{"--csi-controller=local.csi.volplane.io=/a.sock"},
			[]string{"csi-controller-local.csi.volplane.io"}, "", "up runs the built-in driver's controller side itself"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("up", pflag.ContinueOnError)
			var f controllerFlags
			f.add(fs)
			err := fs.Parse(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cfg := f.config(nil, "seed")
			var got []string
			for _, d := range cfg.Controllers {
				if strings.HasPrefix(d.Name, "csi-controller-") {
					got = append(got, d.Name)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("CSI controllers %v, want %v", got, tc.want)
			}
			_, err = upDriver(t.TempDir(), "n", "", f.csi)
			if tc.wantUpError == "" && err != nil || tc.wantUpError != "" && (err == nil || !strings.Contains(err.Error(), tc.wantUpError)) {
				t.Errorf("up: %v, want %q", err, tc.wantUpError)
			}
		})
	}
}

// up's built-in driver sits where a kubelet's would, under DIR/kubelet,
// with its pool in DIR/pool; a data dir too long for its sockets is a
// clear error when the driver starts.
func TestUpDriverPaths(t *testing.T) {
	r, err := upDriver("/data", "node-1", "2Gi", csiControllerFlag{})
	if err != nil {
		t.Fatal(err)
	}
	if r.endpoint != "unix:///data/kubelet/plugins/local.csi.volplane.io/csi.sock" ||
		r.registrationDir != "/data/kubelet/plugins_registry" || r.cfg.Pool.Dir != "/data/pool" ||
		r.cfg.Pool.ImageSize != 2<<30 || r.cfg.NodeID != "node-1" || r.cfg.Name != "local.csi.volplane.io" {
		t.Errorf("driver %+v endpoint %s registration %s", r.cfg, r.endpoint, r.registrationDir)
	}
	c := builtinController(r)
	if want := (csicontroller.Config{Name: "local.csi.volplane.io", Endpoint: r.endpoint, StrictTopology: true}); c != want {
		t.Errorf("controller %+v, want %+v", c, want)
	}
	if err := r.checkSockets(); err != nil {
		t.Errorf("short data dir: %v", err)
	}
	long, err := upDriver("/"+strings.Repeat("d", 55), "n", "", csiControllerFlag{})
	if err != nil {
		t.Fatal(err)
	}
	if err := long.checkSockets(); err == nil || !strings.Contains(err.Error(), "/local.csi.volplane.io-reg.sock is longer than the 107 bytes") {
		t.Errorf("long data dir: %v", err)
	}
	if _, err := upDriver("/data", "n", "lots", csiControllerFlag{}); err == nil || !strings.Contains(err.Error(), "--pool-size") {
		t.Errorf("bad pool size: %v", err)
	}
}
