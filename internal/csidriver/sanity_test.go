package csidriver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"github.com/onsi/ginkgo/v2/types"

	"volplane/internal/csidriver"
	"volplane/internal/csidriver/pool"
	"volplane/internal/hostops/hostopstest"
	"volplane/internal/logging"
)

// sanitySpecs is the number of non-pending specs csi-sanity v5.6.0 has;
// with every optional input set, every one of them must run and pass.
const sanitySpecs = 102

// sanityPools are the two pools csi-sanity runs against: the pool
// directory on btrfs (qgroups), and on ext4 without quota support (the
// driver falls back to a loop-backed btrfs image).
var sanityPools = map[string]struct {
	fstype string
	mode   pool.Mode
}{
	"btrfs": {"btrfs", pool.ModeBtrfs},
	"ext4":  {"ext4", pool.ModeBtrfsImage},
}

// sanityRuns are the csi-sanity runs: directory volumes on each pool
// (what the issue asks), and block volumes, formatted and raw, on one
// pool each.
var sanityRuns = []struct {
	name, pool, kind, access string
}{
	{"btrfs", "btrfs", "dir", "mount"},
	{"ext4", "ext4", "dir", "mount"},
	{"btrfs-block-filesystem", "btrfs", "block", "mount"},
	{"ext4-block-raw", "ext4", "block", "block"},
}

// TestSanity runs csi-sanity once per entry of sanityRuns. Ginkgo runs one
// suite per process, so each run is a child process of this test binary
// (TestSanityChild); the parent reads Ginkgo's JSON report and demands
// that all specs ran and passed, none skipped.
func TestSanity(t *testing.T) {
	hostopstest.RequireRoot(t)
	for _, run := range sanityRuns {
		name := run.name
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			report := filepath.Join(dir, "report.json")
			cmd := exec.Command(os.Args[0], "-test.run=^TestSanityChild$", "-test.v", "-test.timeout=30m",
				"-ginkgo.json-report="+report, "-ginkgo.no-color", "-ginkgo.timeout=30m")
			cmd.Env = append(os.Environ(), "VOLPLANE_SANITY_POOL="+run.pool,
				"VOLPLANE_SANITY_KIND="+run.kind, "VOLPLANE_SANITY_ACCESS="+run.access)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("csi-sanity, %s: %v", name, err)
			}
			counts, cerr := countSpecs(report)
			if cerr != nil {
				t.Fatalf("%v\n%s", cerr, tail(out, 200))
			}
			t.Logf("csi-sanity, %s: %d passed, %d failed, %d skipped, %d pending",
				name, counts["passed"], counts["failed"], counts["skipped"], counts["pending"])
			if counts["passed"] != sanitySpecs {
				t.Errorf("want all %d specs passed, got %v", sanitySpecs, counts)
			}
			for state, n := range counts {
				if state != "passed" && state != "pending" && n > 0 {
					t.Errorf("%d specs %s", n, state)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", tail(out, 400))
			}
		})
	}
}

func countSpecs(path string) (map[string]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("no Ginkgo report: %w", err)
	}
	var reports []types.Report
	if err := json.Unmarshal(b, &reports); err != nil {
		return nil, fmt.Errorf("Ginkgo report: %w", err)
	}
	counts := map[string]int{}
	for _, r := range reports {
		for _, s := range r.SpecReports {
			if s.LeafNodeType == types.NodeTypeIt {
				counts[s.State.String()]++
			}
		}
	}
	return counts, nil
}

func tail(out []byte, lines int) string {
	l := strings.Split(string(out), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// TestSanityChild is the csi-sanity run itself; TestSanity starts it.
func TestSanityChild(t *testing.T) {
	name := os.Getenv("VOLPLANE_SANITY_POOL")
	if name == "" {
		t.Skip("run by TestSanity in a child process")
	}
	p, ok := sanityPools[name]
	if !ok {
		t.Fatalf("unknown pool %q", name)
	}
	mnt := hostopstest.LoopFS(t, p.fstype, 4<<30)
	base := t.TempDir()
	endpoint := "unix://" + filepath.Join(base, "csi.sock")

	logFile, err := os.Create(filepath.Join(base, "driver.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	ctx, cancel := context.WithCancel(logging.NewContext(context.Background(),
		slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	d, err := csidriver.New(ctx, csidriver.Config{
		NodeID:            "sanity-node",
		Pool:              pool.Config{Dir: filepath.Join(mnt, "pool"), ImageSize: 2 << 30},
		MaxVolumesPerNode: 6,
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.Pool().Mode() != p.mode {
		t.Fatalf("pool on %s chose mode %s, want %s", p.fstype, d.Pool().Mode(), p.mode)
	}
	l, err := csidriver.Listen(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- d.ServeOn(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := d.Pool().Unmount(context.Background()); err != nil {
			t.Errorf("unmount pool: %v", err)
		}
		logFile.Seek(0, io.SeekStart)
		b, _ := io.ReadAll(logFile)
		if strings.Contains(string(b), "s3cret") {
			t.Errorf("a secret reached the driver log")
		}
		if t.Failed() {
			t.Logf("driver log:\n%s", tail(b, 300))
		}
	})

	secrets := filepath.Join(base, "secrets.yaml")
	if err := os.WriteFile(secrets, []byte(sanitySecrets), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := sanity.NewTestConfig()
	cfg.Address = endpoint
	cfg.TargetPath = filepath.Join(base, "target")
	cfg.StagingPath = filepath.Join(base, "staging")
	cfg.SecretsFile = secrets
	cfg.TestVolumeSize = 10 << 20
	cfg.TestVolumeExpandSize = 20 << 20
	cfg.TestVolumeParameters = map[string]string{csidriver.ParamType: "dir"}
	if kind := os.Getenv("VOLPLANE_SANITY_KIND"); kind != "" {
		cfg.TestVolumeParameters[csidriver.ParamType] = kind
	}
	if access := os.Getenv("VOLPLANE_SANITY_ACCESS"); access != "" {
		cfg.TestVolumeAccessType = access
	}
	cfg.TestVolumeMutableParameters = map[string]string{csidriver.MutableCompression: "zstd"}
	cfg.TestSnapshotParameters = map[string]string{"csi.storage.k8s.io/volumesnapshot/name": "sanity"}
	cfg.TestNodeVolumeAttachLimit = true
	cfg.IdempotentCount = 5
	sanity.Test(t, cfg)
}

// sanitySecrets gives every call a secret, so the runs also show that
// secrets pass and never reach the log.
const sanitySecrets = `
CreateVolumeSecret: {password: s3cret-create}
DeleteVolumeSecret: {password: s3cret-delete}
ControllerPublishVolumeSecret: {password: s3cret-publish}
ControllerUnpublishVolumeSecret: {password: s3cret-unpublish}
ControllerValidateVolumeCapabilitiesSecret: {password: s3cret-validate}
NodeStageVolumeSecret: {password: s3cret-stage}
NodePublishVolumeSecret: {password: s3cret-nodepublish}
CreateSnapshotSecret: {password: s3cret-snapshot}
DeleteSnapshotSecret: {password: s3cret-delsnapshot}
ControllerExpandVolumeSecret: {password: s3cret-expand}
ControllerModifyVolumeSecret: {password: s3cret-modify}
ListSnapshotsSecret: {password: s3cret-list}
GetSnapshotSecret: {password: s3cret-get}
`
