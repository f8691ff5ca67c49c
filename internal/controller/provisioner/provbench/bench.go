package provbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"volplane/internal/bootstrap"
	"volplane/internal/csidriver"
	"volplane/internal/node/podbench"
)

// Config configures the bench.
type Config struct {
	// Executable is the volplane binary started as `up` (the bench's own).
	Executable string
	// Claims is how many claims of the Immediate class are created at once.
	Claims int
	// Pods is how many pods, each with a claim of the default class, are
	// created at once.
	Pods int
	// PoolSize is passed to `up --pool-size` when not empty.
	PoolSize string
	// UpArgs are extra flags of the child `up` (e.g. --cpuprofile FILE).
	UpArgs []string
	// Keep leaves the data dir in place (its containers and mounts are
	// still removed).
	Keep bool
	// WorkDir is where the data dir is made (default: the system's
	// temporary directory).
	WorkDir string
	// Runc is the runc binary for the cleanup ("runc" on $PATH when empty).
	Runc string
	// Timeout bounds each wait (a hang, not a target).
	Timeout time.Duration
}

// Validate fills in defaults and checks c.
func (c *Config) Validate() error {
	if c.Executable == "" {
		return errors.New("bench provision: no executable")
	}
	if c.Claims <= 0 || c.Pods <= 0 {
		return errors.New("bench provision: --claims and --pods must be positive")
	}
	if c.PoolSize != "" {
		if _, err := resource.ParseQuantity(c.PoolSize); err != nil {
			return fmt.Errorf("bench provision: --pool-size: %w", err)
		}
	}
	if c.Runc == "" {
		c.Runc = "runc"
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Minute
	}
	return nil
}

const (
	nodeName   = "bench-provision"
	namespace  = v1.NamespaceDefault
	benchLabel = "volplane-bench"
	// immediateClass is the bench's class of the built-in driver.
	immediateClass = "bench-immediate"
	claimSize      = "1Mi"
)

// Run starts the cluster, measures, prints the table to out and cleans up.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	b := podbench.Bench{Name: "provision", Executable: cfg.Executable, NodeName: nodeName, WorkDir: cfg.WorkDir, Keep: cfg.Keep, Runc: cfg.Runc, Timeout: cfg.Timeout}
	b.UpArgs = append(b.UpArgs, cfg.UpArgs...)
	if cfg.PoolSize != "" {
		b.UpArgs = append(b.UpArgs, "--pool-size", cfg.PoolSize)
	}
	describe := fmt.Sprintf("%d claims (%s, Immediate), %d pods with a claim of %s", cfg.Claims, immediateClass, cfg.Pods, bootstrap.DefaultStorageClass)
	return b.Run(ctx, out, describe, func(c *podbench.Cluster, dataDir string) error {
		res := Result{Claims: cfg.Claims, Pods: cfg.Pods, LoadStart: podbench.LoadAverage()}
		merr := measure(ctx, c.Client(), cfg, dataDir, &res)
		res.LoadEnd = podbench.LoadAverage()
		// What was measured before a failure is still worth printing.
		if err := podbench.PrintTable(out, res.Rows()); err != nil {
			return errors.Join(merr, err)
		}
		return merr
	})
}

func measure(ctx context.Context, cs kubernetes.Interface, cfg Config, dataDir string, res *Result) error {
	claims, err := podbench.StartMarker(ctx, podbench.ClaimsLW(cs, namespace), benchLabel, claimBound)
	if err != nil {
		return fmt.Errorf("claims: %w", err)
	}
	defer claims.Stop()
	pods, err := podbench.StartMarker(ctx, podbench.PodsLW(cs, namespace), benchLabel, podbench.PodRunningReady)
	if err != nil {
		return fmt.Errorf("pods: %w", err)
	}
	defer pods.Stop()
	if _, err := cs.StorageV1().StorageClasses().Create(ctx, benchClass(), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create class %s: %w", immediateClass, err)
	}
	if err := measureClaims(ctx, cs, claims, cfg, res); err != nil {
		return fmt.Errorf("claims of %s: %w", immediateClass, err)
	}
	res.ClaimsDone = true
	if err := measurePods(ctx, cs, pods, cfg, res); err != nil {
		return fmt.Errorf("pods with a claim of %s: %w", bootstrap.DefaultStorageClass, err)
	}
	res.PodsDone = true
	var names []string
	for i := range cfg.Claims {
		names = append(names, claimName(i))
	}
	podNames := make([]string, cfg.Pods)
	for i := range podNames {
		podNames[i] = podName(i)
	}
	names = append(names, podNames...) // each pod's claim has the pod's name
	if res.Teardown, err = teardown(ctx, cs, pods, claims, podNames, names, poolDir(dataDir), cfg.Timeout); err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	res.TeardownDone = true
	return nil
}

func benchClass() *storagev1.StorageClass {
	return &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: immediateClass, Labels: map[string]string{benchLabel: "provision"}},
		Provisioner:       csidriver.DriverName,
		ReclaimPolicy:     ptr.To(v1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingImmediate),
	}
}

func benchClaim(name, class string) *v1.PersistentVolumeClaim {
	return &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{benchLabel: "provision"}},
		Spec: v1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To(class),
			AccessModes:      []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			Resources: v1.VolumeResourceRequirements{
				Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse(claimSize)},
			},
		},
	}
}

// benchPod runs a sleeping container with the claim of the same name
// mounted.
func benchPod(name string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{benchLabel: "provision"}},
		Spec: v1.PodSpec{
			RestartPolicy: v1.RestartPolicyNever,
			Containers: []v1.Container{{
				Name:         "c",
				Image:        "busybox",
				Command:      []string{"sh", "-c", "exec sleep 3600"},
				VolumeMounts: []v1.VolumeMount{{Name: "data", MountPath: "/data"}},
			}},
			Volumes: []v1.Volume{{
				Name:         "data",
				VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: name}},
			}},
		},
	}
}

func claimName(i int) string { return fmt.Sprintf("claim-%d", i) }
func podName(i int) string   { return fmt.Sprintf("pod-%d", i) }
