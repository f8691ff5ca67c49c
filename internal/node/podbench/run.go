package podbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"volplane/internal/logging"
	"volplane/internal/node/leftovers"
)

// Bench is what every bench that runs on a child `volplane up` shares:
// where its data dir goes, how it is cleaned up, and the child itself.
type Bench struct {
	// Name is the bench's subcommand ("pods"), for the header line and
	// the data dir's name.
	Name string
	// Executable is the volplane binary started as `up`.
	Executable string
	// NodeName is the child's node name; UpArgs are extra `up` flags.
	NodeName string
	UpArgs   []string
	// WorkDir is where the data dir is made (default: the system's
	// temporary directory); Keep leaves it in place (its containers and
	// mounts are still removed).
	WorkDir string
	Keep    bool
	// Runc is the runc binary the cleanup uses.
	Runc string
	// Timeout bounds the wait for the child to be ready.
	Timeout time.Duration
}

// Run makes a fresh data dir, prints the header line "volplane bench
// <name>: volplane up in <dir>, <describe>", starts the child cluster and
// calls measure with it. Then it stops the child, kills the containers
// and unmounts what its agent left on purpose (leftovers.Clean) and
// removes the data dir unless Keep. An error of measure comes back with
// the child's last lines of output.
func (b Bench) Run(ctx context.Context, out io.Writer, describe string, measure func(c *Cluster, dataDir string) error) (err error) {
	dataDir, err := os.MkdirTemp(b.WorkDir, "volplane-bench-"+b.Name+"-")
	if err != nil {
		return err
	}
	defer func() {
		if cerr := leftovers.Clean(b.Runc, dataDir); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup %s: %w", dataDir, cerr))
		}
		if b.Keep {
			fmt.Fprintf(out, "data dir kept: %s\n", dataDir)
			return
		}
		if rerr := os.RemoveAll(dataDir); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	fmt.Fprintf(out, "volplane bench %s: volplane up in %s, %s\n", b.Name, dataDir, describe)
	start := time.Now()
	c, err := StartCluster(ctx, b.Executable, dataDir, b.NodeName, b.Timeout, b.UpArgs...)
	if c != nil {
		defer func() {
			if serr := c.Stop(); serr != nil {
				err = errors.Join(err, serr)
			}
		}()
	}
	if err != nil {
		return err
	}
	logging.FromContext(ctx).Info("cluster ready", "took", time.Since(start))
	if err := measure(c, dataDir); err != nil {
		return fmt.Errorf("%w\n--- last lines of volplane up:\n%s", err, c.Tail(30))
	}
	return nil
}

// LoadAverage is the machine's 1/5/15-minute load average, "unknown"
// when it cannot be read. The machine may be shared: its load says how
// to read a bench's figures.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown: " + err.Error()
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
