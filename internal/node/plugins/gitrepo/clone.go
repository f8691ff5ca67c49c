package gitrepo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"volplane/internal/hostops"
	"volplane/internal/node/plugins"
)

// gitConfig is set on every git command: no hooks, no fsmonitor command,
// no ssh, no embedded bare repositories, no submodules. Together with the
// environment of git (GIT_ALLOW_PROTOCOL overrides any protocol.*.allow),
// nothing in the repository or on the host decides what git runs.
var gitConfig = []string{
	"-c", "core.hooksPath=/dev/null",
	"-c", "core.fsmonitor=false",
	"-c", "core.sshCommand=/bin/false",
	"-c", "safe.bareRepository=explicit",
	"-c", "submodule.recurse=false",
	"-c", "credential.helper=",
}

// validate refuses arguments git would read as options, and a directory
// that is not one plain name ("" and "." are the volume itself).
func validate(src *corev1.GitRepoVolumeSource) error {
	for _, a := range []struct{ value, name string }{{src.Repository, "repository"}, {src.Revision, "revision"}, {src.Directory, "directory"}} {
		if strings.HasPrefix(a.value, "-") {
			return fmt.Errorf("%q is an invalid value for %s", a.value, a.name)
		}
	}
	if src.Repository == "" {
		return fmt.Errorf("gitRepo volume has no repository")
	}
	d := filepath.Clean(src.Directory)
	if src.Directory != "" && d != "." && (strings.ContainsAny(d, `/\`) || d == "..") {
		return fmt.Errorf("%q is not a valid directory, it must not contain a directory separator", src.Directory)
	}
	return nil
}

// clone sets the volume up: see the package doc.
func (p *Plugin) clone(ctx context.Context, args plugins.SetUpArgs) error {
	src := args.Spec.Volume.GitRepo
	if err := validate(src); err != nil {
		return err
	}
	meta, err := metaDir(args.Dir)
	if err != nil {
		return err
	}
	ready := filepath.Join(meta, "ready")
	if _, err := os.Stat(ready); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(args.Dir), 0o750); err != nil {
		return err
	}
	if err := os.Mkdir(args.Dir, 0o777); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	// What an earlier, failed attempt left is removed first; never
	// through a mount.
	if err := p.emptyDir(args.Dir); err != nil {
		return err
	}
	if err := os.Chmod(args.Dir, 0o777); err != nil {
		return err
	}
	cloneArgs := []string{"clone", "--no-recurse-submodules", "--", src.Repository}
	if src.Directory != "" {
		cloneArgs = append(cloneArgs, src.Directory)
	}
	if err := p.git(ctx, args.Dir, cloneArgs...); err != nil {
		return fmt.Errorf("failed to exec 'git %s': %w", strings.Join(cloneArgs, " "), err)
	}
	if src.Revision != "" {
		repo := args.Dir
		if filepath.Clean(src.Directory) != "." {
			entries, err := os.ReadDir(args.Dir)
			if err != nil {
				return err
			}
			if len(entries) != 1 || !entries[0].IsDir() || entries[0].Type()&os.ModeSymlink != 0 {
				return fmt.Errorf("unexpected directory contents: %v", entries)
			}
			repo = filepath.Join(args.Dir, entries[0].Name())
		}
		if err := p.git(ctx, repo, "checkout", "--no-recurse-submodules", src.Revision, "--"); err != nil {
			return fmt.Errorf("failed to exec 'git checkout %s': %w", src.Revision, err)
		}
		if err := p.git(ctx, repo, "reset", "--hard"); err != nil {
			return fmt.Errorf("failed to exec 'git reset --hard': %w", err)
		}
	}
	if err := plugins.SetVolumeOwnership(args.Dir, args.FSGroup, args.FSGroupChangePolicy, false); err != nil {
		return err
	}
	if err := os.MkdirAll(meta, 0o750); err != nil {
		return err
	}
	return os.WriteFile(ready, nil, 0o600)
}

// git runs git in dir with a clean environment: no system or global
// configuration, no terminal prompt, only the allowed protocols.
func (p *Plugin) git(ctx context.Context, dir string, args ...string) error {
	full := append(append([]string{}, gitConfig...), args...)
	cmd := exec.CommandContext(ctx, p.cfg.Git, full...)
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=/nonexistent",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=/bin/false",
		"GIT_SSH_COMMAND=/bin/false",
		"GIT_ALLOW_PROTOCOL=" + strings.Join(p.cfg.Protocols, ":"),
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		return nil
	}
	ee := &hostops.ExecError{Command: append([]string{p.cfg.Git}, args...), ExitCode: -1, Stderr: strings.TrimSpace(stderr.String()), Err: err}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && exitErr.Exited() {
		ee.ExitCode = exitErr.ExitCode()
	}
	return ee
}

// emptyDir removes everything in dir, refusing while anything is mounted
// below it.
func (p *Plugin) emptyDir(dir string) error {
	mounted, err := plugins.MountsUnder(p.Host().Ops, dir)
	if err != nil {
		return err
	}
	if len(mounted) > 0 {
		return fmt.Errorf("%s is mounted inside the gitRepo volume: not cleaning it", strings.Join(mounted, ", "))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// metaDir is <root>/pods/<uid>/plugins/kubernetes.io~git-repo/<name>, where
// the ready marker lives, for the volume directory
// <root>/pods/<uid>/volumes/kubernetes.io~git-repo/<name>.
func metaDir(dir string) (string, error) {
	dir = filepath.Clean(dir)
	plugin := filepath.Dir(dir)
	volumes := filepath.Dir(plugin)
	if filepath.Base(plugin) != plugins.EscapeName(PluginName) || filepath.Base(volumes) != "volumes" {
		return "", fmt.Errorf("%s is not a gitRepo pod volume directory", dir)
	}
	return filepath.Join(filepath.Dir(volumes), "plugins", filepath.Base(plugin), filepath.Base(dir)), nil
}
