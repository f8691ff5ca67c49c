package apivolume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"volplane/internal/node/plugins"
	"volplane/internal/node/plugins/atomicwriter"
)

// Notifier is a plugin that reports volumes whose content changed. See
// the package doc.
type Notifier interface {
	OnChange(fn func(volumeName string))
}

// Base carries what every API-content plugin needs. Embed it and set
// PluginName; call InitBase from Init.
type Base struct {
	// PluginName is upstream's plugin name, "kubernetes.io/configmap".
	PluginName string
	// Release, when set, is called by TearDown with the volume's unique
	// name, so the plugin stops watching what the volume read.
	Release func(volumeName string)

	host     *plugins.Host
	mu       sync.Mutex
	handlers []func(string)
	pods     map[string]types.UID // volume name -> pod, for Host.Remount
}

// InitBase keeps host for SetUp and TearDown.
func (b *Base) InitBase(host *plugins.Host) error {
	if host == nil || host.Ops == nil {
		return fmt.Errorf("%s: a host with Ops is required", b.PluginName)
	}
	b.host = host
	return nil
}

// Host returns the host InitBase kept.
func (b *Base) Host() *plugins.Host { return b.host }

// Name implements plugins.Plugin.
func (b *Base) Name() string { return b.PluginName }

// VolumeName implements plugins.Plugin: "<plugin>/<pod uid>-<name>".
func (b *Base) VolumeName(spec *plugins.Spec, pod *corev1.Pod) (string, error) {
	if spec == nil || pod == nil || pod.UID == "" || spec.Name == "" {
		return "", fmt.Errorf("%s: a volume name and a pod UID are required", b.PluginName)
	}
	return plugins.PodScopedVolumeName(b.PluginName, pod, spec), nil
}

// Track returns the unique name of the volume SetUp is called for and
// remembers its pod, so a change can be pushed with Host.Remount. Call it
// first in SetUp, before anything can fail: a volume whose object is
// still missing must hear when it appears.
func (b *Base) Track(args plugins.SetUpArgs) (string, error) {
	name, err := b.VolumeName(args.Spec, args.Pod)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pods == nil {
		b.pods = map[string]types.UID{}
	}
	b.pods[name] = args.Pod.UID
	return name, nil
}

// RequiresRemount implements plugins.Remounter: the content follows the
// API.
func (b *Base) RequiresRemount(*plugins.Spec) bool { return true }

// NameFromDir returns the unique name of the volume whose pod volume
// directory is dir (<root>/pods/<uid>/volumes/<escaped plugin>/<name>).
func (b *Base) NameFromDir(dir string) (string, error) {
	dir = filepath.Clean(dir)
	name := filepath.Base(dir)
	pluginDir := filepath.Dir(dir)
	volumes := filepath.Dir(pluginDir)
	uid := filepath.Base(filepath.Dir(volumes))
	if filepath.Base(pluginDir) != plugins.EscapeName(b.PluginName) || filepath.Base(volumes) != "volumes" || uid == "" || uid == "." || uid == "/" {
		return "", fmt.Errorf("%s: %s is not a pod volume directory of this plugin", b.PluginName, dir)
	}
	return b.PluginName + "/" + uid + "-" + name, nil
}

// OnChange implements Notifier.
func (b *Base) OnChange(fn func(volumeName string)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.handlers = append(b.handlers, fn)
}

// Notify tells the volume manager that volumeName, one of this plugin's
// volumes, changed: through Host.Remount with its pod, and through the
// OnChange callbacks. A shared object cache calls it for every volume;
// others' are ignored.
func (b *Base) Notify(volumeName string) {
	if !strings.HasPrefix(volumeName, b.PluginName+"/") {
		return
	}
	b.mu.Lock()
	handlers := append([]func(string){}, b.handlers...)
	uid, tracked := b.pods[volumeName]
	b.mu.Unlock()
	if tracked && b.host != nil && b.host.Remount != nil {
		b.host.Remount(uid)
	}
	for _, fn := range handlers {
		fn(volumeName)
	}
}

// tmpfsOptions are the mount options of a secret volume's tmpfs.
var tmpfsOptions = []string{"nosuid", "nodev", "mode=0777"}

// Write makes dir hold payload: on a tmpfs when tmpfs is set. See the
// package doc.
func (b *Base) Write(ctx context.Context, args plugins.SetUpArgs, tmpfs bool, payload atomicwriter.Payload) error {
	dir := args.Dir
	if err := os.MkdirAll(filepath.Dir(dir), 0o750); err != nil {
		return fmt.Errorf("create volume directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o777); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create volume directory: %w", err)
	}
	mounted := false
	if tmpfs {
		mp, err := b.host.Ops.IsMountPoint(dir)
		if err != nil {
			return fmt.Errorf("check %s: %w", dir, err)
		}
		if !mp {
			if err := b.host.Ops.Mount(ctx, "tmpfs", dir, "tmpfs", tmpfsOptions); err != nil {
				return fmt.Errorf("mount tmpfs for volume %q: %w", args.Spec.Name, err)
			}
			mounted = true
		}
	}
	err := b.write(dir, args.FSGroup, payload)
	if err != nil && mounted {
		if uerr := b.host.Ops.Unmount(ctx, dir); uerr != nil {
			err = errors.Join(err, uerr)
		}
	}
	return err
}

func (b *Base) write(dir string, fsGroup *int64, payload atomicwriter.Payload) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if st.Mode().Perm() != 0o777 {
		if err := os.Chmod(dir, st.Mode()&os.ModeSetgid|0o777); err != nil {
			return err
		}
	}
	_, err = atomicwriter.Write(dir, payload, fsGroup)
	return err
}

// ForgetPod releases what the volumes of pod read (watches, tokens,
// certificates) without touching any directory: for a pod that went away
// while a volume of it never came up (its configMap still missing, say),
// so no TearDown will come for it. Mounted volumes are released by their
// TearDown.
func (b *Base) ForgetPod(uid types.UID) {
	b.mu.Lock()
	var names []string
	for name, u := range b.pods {
		if u == uid {
			names = append(names, name)
			delete(b.pods, name)
		}
	}
	b.mu.Unlock()
	if b.Release != nil {
		for _, name := range names {
			b.Release(name)
		}
	}
}

// TearDown implements plugins.Plugin for the API-content plugins.
func (b *Base) TearDown(ctx context.Context, dir string) error {
	name, err := b.NameFromDir(dir)
	if err != nil {
		return err
	}
	if err := b.host.Ops.Unmount(ctx, dir); err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	left, err := plugins.MountsUnder(b.host.Ops, dir)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("%s is still mounted at %s: not removing it", dir, strings.Join(left, ", "))
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	if b.Release != nil {
		b.Release(name)
	}
	b.mu.Lock()
	delete(b.pods, name)
	b.mu.Unlock()
	return nil
}
