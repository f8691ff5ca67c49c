package podbench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// userHZ is the unit of /proc/stat's times: USER_HZ, 100 on every Linux
// architecture volplane runs on.
const userHZ = 100

// MachineCPU is one reading of the machine's CPU time, all cores, from
// /proc/stat: how a bench tells the time its child `up` spent from the
// time everything else spent (runc, conmon, the containers, the bench).
type MachineCPU struct {
	// Busy and Idle are CPU seconds so far; idle includes iowait.
	Busy, Idle float64
}

// ReadMachineCPU reads /proc/stat.
func ReadMachineCPU() (MachineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineCPU{}, err
	}
	return parseMachineCPU(string(b))
}

// parseMachineCPU reads the aggregate "cpu" line: user nice system idle
// iowait irq softirq steal [guest guest_nice], the guest times being
// already part of user and nice. Steal (the hypervisor running someone
// else) is neither this machine's work nor its idleness: left out.
func parseMachineCPU(text string) (MachineCPU, error) {
	line, _, _ := strings.Cut(text, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return MachineCPU{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var v [8]float64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return MachineCPU{}, fmt.Errorf("/proc/stat: %w", err)
		}
		v[i] = float64(n) / userHZ
	}
	return MachineCPU{
		Busy: v[0] + v[1] + v[2] + v[5] + v[6],
		Idle: v[3] + v[4],
	}, nil
}

// Since is the CPU time spent after earlier.
func (m MachineCPU) Since(earlier MachineCPU) MachineCPU {
	return MachineCPU{Busy: m.Busy - earlier.Busy, Idle: m.Idle - earlier.Idle}
}

// BusyShare is the busy part of all the CPU time, 0 to 1.
func (m MachineCPU) BusyShare() float64 {
	if m.Busy+m.Idle <= 0 {
		return 0
	}
	return m.Busy / (m.Busy + m.Idle)
}
