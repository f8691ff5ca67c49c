package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ErrUnknownUser is returned when a user or group named by the pod or the
// image is not in the image's /etc/passwd or /etc/group.
var ErrUnknownUser = errors.New("unable to find user")

// entry is one line of /etc/passwd or /etc/group.
type entry struct {
	name    string
	id      uint32
	gid     uint32   // passwd only
	members []string // group only
}

// readEntries parses a passwd (fields 0, 2, 3) or group (fields 0, 2, 3)
// file. A missing file has no entries.
func readEntries(path string, group bool) ([]entry, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Split(line, ":")
		if len(fs) < 4 {
			continue
		}
		id, err := strconv.ParseUint(fs[2], 10, 32)
		if err != nil {
			continue
		}
		e := entry{name: fs[0], id: uint32(id)}
		if group {
			if fs[3] != "" {
				e.members = strings.Split(fs[3], ",")
			}
		} else if gid, err := strconv.ParseUint(fs[3], 10, 32); err == nil {
			e.gid = uint32(gid)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// resolveUser finds the uid, gid and additional gids a container runs
// with, as a CRI runtime does: run_as_user or run_as_username from the
// security context, else the image's User, else root; the primary group
// from run_as_group, the user spec or /etc/passwd; additional groups from
// /etc/group membership and supplemental_groups. root is the directory
// whose /etc is read.
func resolveUser(root string, sec *runtimeapi.LinuxContainerSecurityContext, ic *imageConfig) (specs.User, error) {
	passwd, err := readEntries(filepath.Join(root, "etc/passwd"), false)
	if err != nil {
		return specs.User{}, err
	}
	groups, err := readEntries(filepath.Join(root, "etc/group"), true)
	if err != nil {
		return specs.User{}, err
	}
	var userSpec, groupSpec string
	switch {
	case sec.GetRunAsUser() != nil:
		userSpec = strconv.FormatInt(sec.GetRunAsUser().GetValue(), 10)
	case sec.GetRunAsUsername() != "":
		userSpec = sec.GetRunAsUsername()
	case ic != nil && ic.User != "":
		userSpec, groupSpec, _ = strings.Cut(ic.User, ":")
	}
	var u specs.User
	name := ""
	if userSpec != "" {
		if id, err := strconv.ParseUint(userSpec, 10, 32); err == nil {
			u.UID = uint32(id)
			if i := slices.IndexFunc(passwd, func(e entry) bool { return e.id == u.UID }); i >= 0 {
				u.GID, name = passwd[i].gid, passwd[i].name
			}
		} else {
			i := slices.IndexFunc(passwd, func(e entry) bool { return e.name == userSpec })
			if i < 0 {
				return specs.User{}, fmt.Errorf("%w %q: no matching entries in passwd file", ErrUnknownUser, userSpec)
			}
			u.UID, u.GID, name = passwd[i].id, passwd[i].gid, passwd[i].name
		}
	} else {
		name = "root"
	}
	if groupSpec != "" {
		if id, err := strconv.ParseUint(groupSpec, 10, 32); err == nil {
			u.GID = uint32(id)
		} else {
			i := slices.IndexFunc(groups, func(e entry) bool { return e.name == groupSpec })
			if i < 0 {
				return specs.User{}, fmt.Errorf("%w group %q: no matching entries in group file", ErrUnknownUser, groupSpec)
			}
			u.GID = groups[i].id
		}
	}
	if g := sec.GetRunAsGroup(); g != nil {
		u.GID = uint32(g.GetValue())
	}
	if name != "" {
		for _, g := range groups {
			if slices.Contains(g.members, name) && g.id != u.GID {
				u.AdditionalGids = append(u.AdditionalGids, g.id)
			}
		}
	}
	for _, g := range sec.GetSupplementalGroups() {
		if !slices.Contains(u.AdditionalGids, uint32(g)) {
			u.AdditionalGids = append(u.AdditionalGids, uint32(g))
		}
	}
	return u, nil
}

// resolveDevices stats each CRI device's host node and returns the node
// runc creates at the container path with the cgroup access asked for
// ("rwm" when the config leaves it empty).
func resolveDevices(ds []*runtimeapi.Device) ([]device, error) {
	var out []device
	for _, d := range ds {
		if !filepath.IsAbs(d.GetContainerPath()) {
			return nil, fmt.Errorf("device %q: the container path must be absolute", d.GetContainerPath())
		}
		var st unix.Stat_t
		if err := unix.Stat(d.GetHostPath(), &st); err != nil {
			return nil, &os.PathError{Op: "stat device", Path: d.GetHostPath(), Err: err}
		}
		var typ string
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFBLK:
			typ = "b"
		case unix.S_IFCHR:
			typ = "c"
		default:
			return nil, fmt.Errorf("device %q is not a block or character device", d.GetHostPath())
		}
		mode := os.FileMode(st.Mode & 0o777)
		uid, gid := st.Uid, st.Gid
		access := d.GetPermissions()
		if access == "" {
			access = "rwm"
		}
		out = append(out, device{
			Node: specs.LinuxDevice{
				Path: d.GetContainerPath(), Type: typ,
				Major: int64(unix.Major(uint64(st.Rdev))), Minor: int64(unix.Minor(uint64(st.Rdev))),
				FileMode: &mode, UID: &uid, GID: &gid,
			},
			Access: access,
		})
	}
	return out, nil
}
