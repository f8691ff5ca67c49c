package pods

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/mount-utils"
)

// podDir is <root>/pods/<uid>, the kubelet's pod directory.
func (w *Workers) podDir(uid types.UID) string {
	return filepath.Join(w.cfg.RootDir, "pods", string(uid))
}

// termLogHostPath is the host file behind a container instance's
// terminationMessagePath.
func (w *Workers) termLogHostPath(uid types.UID, container string, restart int32) string {
	return filepath.Join(w.podDir(uid), "containers", container, strconv.Itoa(int(restart)))
}

// podLogDir is <LogDir>/pods/<ns>_<name>_<uid>, the sandbox's
// LogDirectory.
func (w *Workers) podLogDir(pod *corev1.Pod) string {
	return filepath.Join(w.cfg.LogDir, "pods", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
}

// containerLogPath is the log path relative to the pod log directory, as
// CRI's ContainerConfig.LogPath wants it.
func containerLogPath(container string, restart int32) string {
	return filepath.Join(container, strconv.Itoa(int(restart))+".log")
}

// isNotFound reports a CRI NotFound error.
func isNotFound(err error) bool {
	return status.Code(err) == codes.NotFound
}

// readTail returns up to max bytes from the end of the file at path, or
// "" when it cannot be read.
func readTail(path string, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	if fi.Size() > max {
		if _, err := f.Seek(fi.Size()-max, io.SeekStart); err != nil {
			return ""
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, max))
	if err != nil {
		return ""
	}
	return string(b)
}

// criLogTail returns the content of the last lines of a CRI format log
// ("<time> <stream> <P|F> <content>"), at most maxBytes of it, as the
// kubelet does for terminationMessagePolicy FallbackToLogsOnError.
func criLogTail(path string, lines int, maxBytes int) string {
	raw := readTail(path, 64<<10)
	var out []string
	sc := bufio.NewScanner(strings.NewReader(raw))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	var partial bytes.Buffer
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), " ", 4)
		if len(fields) < 4 {
			continue
		}
		partial.WriteString(fields[3])
		if fields[2] == "P" {
			continue
		}
		out = append(out, partial.String())
		partial.Reset()
	}
	if len(out) > lines {
		out = out[len(out)-lines:]
	}
	msg := strings.Join(out, "\n")
	if len(out) > 0 {
		msg += "\n"
	}
	if len(msg) > maxBytes {
		msg = msg[len(msg)-maxBytes:]
	}
	return msg
}

// procMountPoints lists this mount namespace's mount points.
func procMountPoints() ([]string, error) {
	infos, err := mount.ParseMountInfo("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("reading the mount table: %w", err)
	}
	out := make([]string, 0, len(infos))
	for _, i := range infos {
		out = append(out, i.MountPoint)
	}
	return out, nil
}

// errMountedBeneath is returned when a pod directory still holds a mount.
var errMountedBeneath = errors.New("a mount is still beneath the pod directory")

// removeDirIfUnmounted removes dir unless a mount point is dir itself or
// beneath it (kubernetes/kubernetes#72257: never remove data through a
// mount). A missing dir is not an error.
func removeDirIfUnmounted(dir string, mountPoints func() ([]string, error)) error {
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	mps, err := mountPoints()
	if err != nil {
		return err
	}
	clean := filepath.Clean(dir)
	for _, mp := range mps {
		if mp == clean || strings.HasPrefix(mp, clean+string(filepath.Separator)) {
			return fmt.Errorf("%s: %w (%s)", dir, errMountedBeneath, mp)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}
