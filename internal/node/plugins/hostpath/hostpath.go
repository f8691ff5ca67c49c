package hostpath

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	corev1 "k8s.io/api/core/v1"

	"volplane/internal/node/plugins"
)

// PluginName is upstream's name.
const PluginName = "kubernetes.io/host-path"

// Plugin is the hostPath plugin.
type Plugin struct{}

var (
	_ plugins.Plugin     = (*Plugin)(nil)
	_ plugins.PathPlugin = (*Plugin)(nil)
)

// New returns the plugin.
func New() *Plugin { return &Plugin{} }

func (p *Plugin) Name() string                  { return PluginName }
func (p *Plugin) Init(host *plugins.Host) error { return nil }

func source(spec *plugins.Spec) *corev1.HostPathVolumeSource {
	if spec.PV != nil {
		return spec.PV.Spec.HostPath
	}
	if spec.Volume != nil {
		return spec.Volume.HostPath
	}
	return nil
}

func (p *Plugin) CanSupport(spec *plugins.Spec) bool { return source(spec) != nil }

func (p *Plugin) VolumeName(spec *plugins.Spec, pod *corev1.Pod) (string, error) {
	return plugins.PodScopedVolumeName(PluginName, pod, spec), nil
}

// VolumePath implements plugins.PathPlugin.
func (p *Plugin) VolumePath(spec *plugins.Spec) string { return source(spec).Path }

// SetUp implements plugins.Plugin: the type check.
func (p *Plugin) SetUp(ctx context.Context, args plugins.SetUpArgs) error {
	src := source(args.Spec)
	if src.Type == nil || *src.Type == corev1.HostPathUnset {
		return nil
	}
	return CheckType(src.Path, *src.Type)
}

// TearDown implements plugins.Plugin: nothing was set up.
func (p *Plugin) TearDown(ctx context.Context, dir string) error { return nil }

// fileType is the upstream name of path's type.
func fileType(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	m := fi.Mode()
	switch {
	case m.IsDir():
		return string(corev1.HostPathDirectory), nil
	case m.IsRegular():
		return string(corev1.HostPathFile), nil
	case m&fs.ModeSocket != 0:
		return string(corev1.HostPathSocket), nil
	case m&fs.ModeDevice != 0 && m&fs.ModeCharDevice != 0:
		return string(corev1.HostPathCharDev), nil
	case m&fs.ModeDevice != 0:
		return string(corev1.HostPathBlockDev), nil
	}
	return "", fmt.Errorf("only recognise file, directory, socket, block device and character device")
}

// CheckType checks that path is of type t, creating it for the
// ...OrCreate types.
func CheckType(path string, t corev1.HostPathType) error {
	want := map[corev1.HostPathType]struct {
		typ  corev1.HostPathType
		name string
	}{
		corev1.HostPathDirectoryOrCreate: {corev1.HostPathDirectory, "directory"},
		corev1.HostPathDirectory:         {corev1.HostPathDirectory, "directory"},
		corev1.HostPathFileOrCreate:      {corev1.HostPathFile, "file"},
		corev1.HostPathFile:              {corev1.HostPathFile, "file"},
		corev1.HostPathSocket:            {corev1.HostPathSocket, "socket file"},
		corev1.HostPathCharDev:           {corev1.HostPathCharDev, "character device"},
		corev1.HostPathBlockDev:          {corev1.HostPathBlockDev, "block device"},
	}
	w, ok := want[t]
	if !ok {
		return fmt.Errorf("%s is an invalid volume type", t)
	}
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		switch t {
		case corev1.HostPathDirectoryOrCreate:
			return os.MkdirAll(path, 0o755)
		case corev1.HostPathFileOrCreate:
			f, err := os.OpenFile(path, os.O_CREATE, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}
	}
	got, err := fileType(path)
	if err != nil {
		return fmt.Errorf("hostPath type check failed, %s is not a %s, unable to determine its type: %w", path, w.name, err)
	}
	if got != string(w.typ) {
		return fmt.Errorf("hostPath type check failed: %s is not a %s, it's a %s", path, w.name, got)
	}
	return nil
}
