package internal_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The boundary of SPEC section 3: volplane never calls upstream's storage
// code. Only internal/controlplane may link it, through the embedded
// kube-controller-manager (whose storage controllers it turns off) and the
// scheduler's in-tree registry; any other package reaching it, directly or
// through a third-party import, fails the build's tests.

const module = "volplane"

// allowedGate is the one package tree that may reach upstream's storage
// code.
const allowedGate = module + "/internal/controlplane"

// forbidden are upstream's storage packages (prefixes).
var forbidden = []string{
	"k8s.io/kubernetes/pkg/volume",
	"k8s.io/kubernetes/pkg/controller/volume",
	"k8s.io/kubernetes/pkg/kubelet",
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/volumebinding",
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/volumerestrictions",
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/volumezone",
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/nodevolumelimits",
}

func isForbidden(p string) bool {
	for _, f := range forbidden {
		if p == f || strings.HasPrefix(p, f+"/") {
			return true
		}
	}
	return false
}

func isOurs(p string) bool { return p == module || strings.HasPrefix(p, module+"/") }

func isGate(p string) bool { return p == allowedGate || strings.HasPrefix(p, allowedGate+"/") }

// pkg is the part of `go list -json` the check reads.
type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Deps         []string
}

// violations returns, for every package of ours outside the gate, each
// outside import (of the package or its tests) that is, or depends on,
// upstream's storage code. Imports of our own packages are checked as
// those packages; importing the gate is allowed.
func violations(pkgs map[string]*pkg) []string {
	var out []string
	for _, p := range pkgs {
		if !isOurs(p.ImportPath) || isGate(p.ImportPath) {
			continue
		}
		imports := slices.Concat(p.Imports, p.TestImports, p.XTestImports)
		slices.Sort(imports)
		for _, imp := range slices.Compact(imports) {
			if isOurs(imp) {
				continue
			}
			if isForbidden(imp) {
				out = append(out, fmt.Sprintf("%s imports %s", p.ImportPath, imp))
				continue
			}
			dep := pkgs[imp]
			if dep == nil {
				out = append(out, fmt.Sprintf("%s imports %s, which go list did not describe", p.ImportPath, imp))
				continue
			}
			for _, d := range dep.Deps {
				if isForbidden(d) {
					out = append(out, fmt.Sprintf("%s imports %s, which depends on %s", p.ImportPath, imp, d))
					break
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func goList(t *testing.T, args ...string) map[string]*pkg {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-e", "-json=ImportPath,Imports,TestImports,XTestImports,Deps"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v\n%s", args, err, stderr.String())
	}
	pkgs := map[string]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list: %v", err)
		}
		pkgs[p.ImportPath] = &p
	}
	return pkgs
}

func TestNoUpstreamStorageCodeOutsideControlplane(t *testing.T) {
	pkgs := goList(t, "-deps", module+"/...")
	// Test-only imports are not in the dependency graph of the
	// packages: describe those too.
	var missing []string
	for _, p := range pkgs {
		if !isOurs(p.ImportPath) {
			continue
		}
		for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
			if !isOurs(imp) && pkgs[imp] == nil && !slices.Contains(missing, imp) {
				missing = append(missing, imp)
			}
		}
	}
	if len(missing) > 0 {
		for k, v := range goList(t, append([]string{"-deps"}, missing...)...) {
			if pkgs[k] == nil {
				pkgs[k] = v
			}
		}
	}
	if v := violations(pkgs); len(v) > 0 {
		t.Errorf("upstream storage code reached outside %s:\n  %s", allowedGate, strings.Join(v, "\n  "))
	}
}

// TestBoundaryCheckFindsViolations: the check itself catches a direct
// import, one through a third-party package, and one in a test, and
// lets the gate through.
func TestBoundaryCheckFindsViolations(t *testing.T) {
	pkgs := map[string]*pkg{
		"volplane/internal/controlplane": {ImportPath: "volplane/internal/controlplane", Imports: []string{"k8s.io/kubernetes/cmd/kube-controller-manager/app"}},
		"volplane/cmd/volplane":          {ImportPath: "volplane/cmd/volplane", Imports: []string{"volplane/internal/controlplane", "k8s.io/client-go/kubernetes"}},
		"volplane/internal/direct":       {ImportPath: "volplane/internal/direct", Imports: []string{"k8s.io/kubernetes/pkg/volume/util"}},
		"volplane/internal/indirect":     {ImportPath: "volplane/internal/indirect", Imports: []string{"example.com/wrapper"}},
		"volplane/internal/intest":       {ImportPath: "volplane/internal/intest", XTestImports: []string{"k8s.io/kubernetes/pkg/kubelet/cm"}},
		"k8s.io/kubernetes/cmd/kube-controller-manager/app": {ImportPath: "k8s.io/kubernetes/cmd/kube-controller-manager/app",
			Deps: []string{"k8s.io/kubernetes/pkg/controller/volume/persistentvolume"}},
		"k8s.io/client-go/kubernetes": {ImportPath: "k8s.io/client-go/kubernetes"},
		"example.com/wrapper":         {ImportPath: "example.com/wrapper", Deps: []string{"k8s.io/kubernetes/pkg/scheduler/framework/plugins/volumebinding"}},
	}
	want := []string{
		"volplane/internal/direct imports k8s.io/kubernetes/pkg/volume/util",
		"volplane/internal/indirect imports example.com/wrapper, which depends on k8s.io/kubernetes/pkg/scheduler/framework/plugins/volumebinding",
		"volplane/internal/intest imports k8s.io/kubernetes/pkg/kubelet/cm",
	}
	if got := violations(pkgs); !slices.Equal(got, want) {
		t.Errorf("violations:\n got %q\nwant %q", got, want)
	}
}
