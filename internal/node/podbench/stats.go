package podbench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
	"time"
)

// Percentile is the nearest-rank p-th percentile (0 < p <= 100) of d:
// the smallest sample at or below which p percent of the samples lie.
// It is 0 for no samples.
func Percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// Row is one line of the printed table.
type Row struct {
	Figure string
	Value  string
	Note   string
}

// Goal is one of the goals: met when Value <= Limit, or
// Value < Limit when Strict.
type Goal struct {
	Name         string
	Value, Limit time.Duration
	Strict       bool
}

// Met reports whether the measured value is within the goal.
func (g Goal) Met() bool { return g.Value < g.Limit || !g.Strict && g.Value == g.Limit }

// Row is the goal as a table line.
func (g Goal) Row() Row {
	verdict := "not met"
	if g.Met() {
		verdict = "met"
	}
	return Row{Figure: "goal: " + g.Name, Value: verdict, Note: fmt.Sprintf("measured %s, limit %s", Millis(g.Value), Millis(g.Limit))}
}

// PrintTable writes rows as aligned columns under a header.
func PrintTable(out io.Writer, rows []Row) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "figure\tvalue\tnote")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\n", r.Figure, r.Value, r.Note)
	}
	return w.Flush()
}

// Millis prints d in milliseconds with one decimal, the unit of every figure.
func Millis(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
