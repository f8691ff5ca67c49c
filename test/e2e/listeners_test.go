package e2e

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestListensOnlyWhereItSays: `volplane up` listens on --listen and on
// unix sockets inside its data dir, nowhere else (no other TCP or UDP
// port, no abstract unix socket any local user could reach).
func TestListensOnlyWhereItSays(t *testing.T) {
	p := startUp(t)
	inodes := socketInodes(t, p.cmd.Process.Pid)

	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6"} {
		for _, l := range procNetLines(t, file) {
			f := strings.Fields(l)
			// sl local rem st ... inode(9)
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			udp := strings.Contains(file, "udp")
			if !udp && f[3] != "0A" { // TCP_LISTEN
				continue
			}
			addr := decodeAddr(t, f[1])
			if addr != p.Listen {
				t.Errorf("%s: volplane listens on %s (only --listen %s is allowed)", file, addr, p.Listen)
			}
		}
	}
	for _, l := range procNetLines(t, "/proc/net/unix") {
		f := strings.Fields(l)
		// Num RefCount Protocol Flags Type St Inode Path
		if len(f) < 7 || !inodes[f[6]] || f[3] != "00010000" { // __SO_ACCEPTCON: listening
			continue
		}
		if len(f) < 8 {
			t.Errorf("unnamed listening unix socket (inode %s)", f[6])
			continue
		}
		path := f[7]
		if strings.HasPrefix(path, "@") {
			t.Errorf("abstract unix socket %s: reachable by any local user", path)
		} else if !strings.HasPrefix(path, p.DataDir+string(filepath.Separator)) {
			t.Errorf("unix socket %s outside the data dir %s", path, p.DataDir)
		}
	}
}

func socketInodes(t *testing.T, pid int) map[string]bool {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") {
			out[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	if len(out) == 0 {
		t.Fatal("no sockets found for the volplane process")
	}
	return out
}

func procNetLines(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	s.Scan() // header
	for s.Scan() {
		lines = append(lines, s.Text())
	}
	return lines
}

// decodeAddr turns /proc/net/tcp's "0100007F:1F90" into "127.0.0.1:8080".
func decodeAddr(t *testing.T, s string) string {
	t.Helper()
	hexIP, hexPort, _ := strings.Cut(s, ":")
	raw, err := hex.DecodeString(hexIP)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel prints each 32-bit word in host (little-endian) order.
	for i := 0; i+4 <= len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort(net.IP(raw).String(), strconv.Itoa(int(port)))
}
