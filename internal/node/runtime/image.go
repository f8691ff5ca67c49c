package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ErrImageNotFound is returned for an image whose directory exists under
// ImagesDir without a rootfs: it is neither a usable image nor the host
// image.
var ErrImageNotFound = errors.New("image not found")

// imageDirName maps an image name to its directory name under ImagesDir:
// "/" and ":" become "_".
func imageDirName(name string) string {
	return strings.NewReplacer("/", "_", ":", "_").Replace(name)
}

// imageCandidates are the directory names an image may live under: its own
// and, since the kubelet adds ":latest" to an untagged name, the name
// without that tag.
func imageCandidates(name string) []string {
	out := []string{imageDirName(name)}
	if base, ok := strings.CutSuffix(name, ":latest"); ok && !strings.Contains(base, "@") {
		out = append(out, imageDirName(base))
	}
	return out
}

// resolveImage applies SPEC section 9's image rule: ImagesDir/<name>/rootfs
// when it exists, with ImagesDir/<name>/config.json when that exists; the
// host image for any name with no directory at all. A directory without a
// rootfs is an error.
func (r *Runtime) resolveImage(name string) (image, error) {
	if name == "" {
		return image{}, status.Error(codes.InvalidArgument, "no image name")
	}
	for _, dir := range imageCandidates(name) {
		d := filepath.Join(r.cfg.ImagesDir, dir)
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return image{}, fmt.Errorf("image %q: %w", name, err)
		}
		rootfs := filepath.Join(d, "rootfs")
		if fi, err := os.Stat(rootfs); err != nil || !fi.IsDir() {
			return image{}, fmt.Errorf("image %q: %w: %s has no rootfs directory", name, ErrImageNotFound, d)
		}
		img := image{Name: name, Rootfs: rootfs}
		cfg, err := readImageConfig(filepath.Join(d, "config.json"))
		if err != nil {
			return image{}, fmt.Errorf("image %q: %w", name, err)
		}
		img.Config = cfg
		return img, nil
	}
	return image{Name: name}, nil
}

// readImageConfig reads an OCI image configuration; its "config" object
// holds the fields applied. A missing file is no configuration.
func readImageConfig(path string) (*imageConfig, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var doc struct {
		Config *imageConfig `json:"config"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if doc.Config == nil {
		doc.Config = &imageConfig{}
	}
	return doc.Config, nil
}

// imageFor returns the CRI image of a resolved image. The reference is
// the name itself: CreateContainer resolves it again.
func imageFor(img image) *runtimeapi.Image {
	out := &runtimeapi.Image{
		Id:       img.Name,
		RepoTags: []string{img.Name},
		Spec:     &runtimeapi.ImageSpec{Image: img.Name},
	}
	if img.Config != nil && img.Config.User != "" {
		u, _, _ := strings.Cut(img.Config.User, ":")
		if uid, err := strconv.ParseInt(u, 10, 64); err == nil {
			out.Uid = &runtimeapi.Int64Value{Value: uid}
		} else {
			out.Username = u
		}
	}
	return out
}

// ListImages implements ImageManagerService: the images under ImagesDir.
// The host image has no name of its own and is not listed.
func (r *Runtime) ListImages(ctx context.Context, filter *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	entries, err := os.ReadDir(r.cfg.ImagesDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var out []*runtimeapi.Image
	for _, e := range entries {
		img, err := r.resolveImage(e.Name())
		if err != nil || img.Rootfs == "" {
			continue
		}
		if want := filter.GetImage().GetImage(); want != "" && want != img.Name {
			continue
		}
		out = append(out, imageFor(img))
	}
	return out, nil
}

// ImageStatus implements ImageManagerService. Every name resolves (to a
// rootfs or the host image) except a directory without a rootfs, which is
// reported as absent.
func (r *Runtime) ImageStatus(ctx context.Context, spec *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error) {
	img, err := r.resolveImage(spec.GetImage())
	if errors.Is(err, ErrImageNotFound) {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ImageStatusResponse{Image: imageFor(img)}, nil
}

// PullImage implements ImageManagerService without a network: it resolves
// the image rule and returns the reference CreateContainer takes.
func (r *Runtime) PullImage(ctx context.Context, spec *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, sandbox *runtimeapi.PodSandboxConfig) (string, error) {
	img, err := r.resolveImage(spec.GetImage())
	if err != nil {
		return "", err
	}
	return img.Name, nil
}

// RemoveImage implements ImageManagerService. Images are the user's
// directories; the runtime never deletes them.
func (r *Runtime) RemoveImage(ctx context.Context, spec *runtimeapi.ImageSpec) error {
	return nil
}

// ImageFsInfo implements ImageManagerService: the filesystem holding
// ImagesDir.
func (r *Runtime) ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	usage, err := fsUsage(r.cfg.ImagesDir)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{usage}}, nil
}

// fsUsage reports the used bytes and inodes of the filesystem holding dir.
func fsUsage(dir string) (*runtimeapi.FilesystemUsage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil, &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	return &runtimeapi.FilesystemUsage{
		Timestamp:  nowNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: dir},
		UsedBytes:  &runtimeapi.UInt64Value{Value: (st.Blocks - st.Bfree) * uint64(st.Bsize)},
		InodesUsed: &runtimeapi.UInt64Value{Value: st.Files - st.Ffree},
	}, nil
}
