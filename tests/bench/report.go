package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Report is one run's result, printed as a table and written as JSON.
type Report struct {
	Started  time.Time       `json:"started"`
	Seconds  float64         `json:"seconds"`
	Plan     Plan            `json:"plan"`
	Host     HostInfo        `json:"host"`
	Settings []string        `json:"settings"`
	Machine  MachineLimits   `json:"machine"`
	Targets  []TargetStatus  `json:"targets"`
	Rows     []*Row          `json:"rows"`
	Failover []FailoverStats `json:"failover,omitempty"`
	Scale    []ScalePoint    `json:"scale,omitempty"`
	Goals    []Goal          `json:"goals,omitempty"` // judged on the full plan only
	Skipped  []string        `json:"skipped,omitempty"`
	Failures []string        `json:"failures,omitempty"`
}

// HostInfo describes the machine the figures come from.
type HostInfo struct {
	CPUs       int    `json:"cpus"`
	GoVersion  string `json:"go_version"`
	Kernel     string `json:"kernel"`
	LoadAvg    string `json:"loadavg_start"`
	LoadAvgEnd string `json:"loadavg_end"`
	// BusyAtStart is how busy the CPUs were, in percent of all of them,
	// over the second before the run; -1 when /proc/stat is unreadable.
	BusyAtStart float64 `json:"cpu_busy_at_start_percent"`
}

// busyWarnPercent is the CPU use before a run above which the table warns
// that other work shares the machine.
const busyWarnPercent = 20

// TargetStatus says whether a target ran, and if not, why.
type TargetStatus struct {
	target
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"`
}

// Row is one figure measured on every target.
type Row struct {
	Section string           `json:"section"` // produce, consume, steady, failover, scale
	Case    string           `json:"case"`    // e.g. "produce 1KiB acks=-1 p=1"
	Metric  string           `json:"metric"`  // e.g. "MB/s", "p99"
	Unit    string           `json:"unit"`    // MB/s, rec/s, ms, s, %core, MB
	Limit   string           `json:"limit,omitempty"`
	Cells   map[string]*Cell `json:"cells"` // by target name
	// Note says how a figure was made, printed under its row, e.g. the
	// cluster's Raft timings beside its idle CPU.
	Note string `json:"note,omitempty"`
}

// Cell is one target's figure in a row.
type Cell struct {
	Value  float64 `json:"value"`
	Failed string  `json:"failed,omitempty"`  // the part ran and failed
	Skip   string  `json:"skipped,omitempty"` // the part did not run
}

func (c *Cell) ok() bool { return c != nil && c.Failed == "" && c.Skip == "" }

// Limit names a row may be compared against.
const (
	limitDisk    = "disk"
	limitNet     = "net"
	limitFsync50 = "fsync p50"
	limitFsync99 = "fsync p99"
)

// row returns the row for case/metric, creating it in order of first use.
func (rep *Report) row(section, kase, metric, unit, limit string) *Row {
	for _, r := range rep.Rows {
		if r.Case == kase && r.Metric == metric {
			return r
		}
	}
	r := &Row{Section: section, Case: kase, Metric: metric, Unit: unit, Limit: limit, Cells: map[string]*Cell{}}
	rep.Rows = append(rep.Rows, r)
	return r
}

func (rep *Report) limit(name string) float64 {
	switch name {
	case limitDisk:
		return rep.Machine.SeqMBps
	case limitNet:
		return rep.Machine.LoopbackMBps
	case limitFsync50:
		return rep.Machine.Fsync.P50Ms
	case limitFsync99:
		return rep.Machine.Fsync.P99Ms
	}
	return 0
}

// WriteTable prints the report for people.
func (rep *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "chronik bench (%s plan) %s, %d CPUs, %s, kernel %s, load average %s at start, %s at end\n",
		rep.Plan.Name, rep.Started.Format(time.RFC3339), rep.Host.CPUs, rep.Host.GoVersion, rep.Host.Kernel,
		rep.Host.LoadAvg, rep.Host.LoadAvgEnd)
	for _, s := range rep.Settings {
		fmt.Fprintln(w, "  "+s)
	}
	if b := rep.Host.BusyAtStart; b > busyWarnPercent {
		fmt.Fprintf(w, "WARNING: the CPUs were %.0f%% busy in the second before the run: other work shares the machine and skews every figure\n", b)
	}
	m := rep.Machine
	fmt.Fprintf(w, "machine: data dir %s (%s)\n", m.DataDir, m.FSType)
	fmt.Fprintf(w, "  fsync 4KiB write+fdatasync  p50 %s  p99 %s  (%d samples)\n",
		fmtValue(m.Fsync.P50Ms, "ms"), fmtValue(m.Fsync.P99Ms, "ms"), m.Fsync.Count)
	fmt.Fprintf(w, "  disk seq write, 1MiB writes, fdatasync every %dMiB  %s\n", m.SeqSyncEvery>>20, fmtValue(m.SeqMBps, "MB/s"))
	fmt.Fprintf(w, "  page cache write, 1MiB writes, no fsync: new pages %s, cached pages %s\n",
		fmtValue(m.PageNewMBps, "MB/s"), fmtValue(m.PageCachedMBps, "MB/s"))
	fmt.Fprintf(w, "  loopback tcp, one Go sender/receiver pair          %s\n", fmtValue(m.LoopbackMBps, "MB/s"))
	if m.FSType == "tmpfs" {
		fmt.Fprintln(w, "  WARNING: the data dir is on tmpfs; disk figures are memory figures")
	}
	for _, e := range m.Errors {
		fmt.Fprintln(w, "  machine probe failed:", e)
	}
	var avail []TargetStatus
	for _, t := range rep.Targets {
		if t.Available {
			fmt.Fprintf(w, "%s: %s, %s, rf %d\n", t.Label, t.Mode, strings.Join(t.Brokers, ","), t.RF)
			avail = append(avail, t)
		} else {
			fmt.Fprintf(w, "%s: not available (%s)\n", t.Name, t.Reason)
		}
	}
	fmt.Fprintln(w)
	labels := rowLabels(rep.Rows)
	width := 30
	for _, l := range labels {
		width = max(width, len(l)+2)
	}
	for i, r := range rep.Rows {
		var parts []string
		for _, t := range avail {
			if c := r.Cells[t.Name]; c != nil {
				parts = append(parts, t.Label+" "+rep.fmtCell(r, t.Name, c))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "%-*s %s\n", width, labels[i], strings.Join(parts, " | "))
		}
		if r.Note != "" {
			fmt.Fprintf(w, "%-*s %s\n", width, "", r.Note)
		}
	}
	fmt.Fprintln(w)
	if len(rep.Goals) > 0 {
		writeGoals(w, rep.Goals)
	} else {
		fmt.Fprintf(w, "goals: not judged on the %s plan\n", rep.Plan.Name)
	}
	fmt.Fprintln(w)
	for _, s := range rep.Skipped {
		fmt.Fprintln(w, "skipped:", s)
	}
	for _, f := range rep.Failures {
		fmt.Fprintln(w, "FAILED:", f)
	}
	fmt.Fprintf(w, "done in %.0fs: %d skipped, %d failed\n", rep.Seconds, len(rep.Skipped), len(rep.Failures))
}

// rowLabels names the first row of a case after the case and indents the
// rows that follow it with just their metric.
func rowLabels(rows []*Row) []string {
	labels := make([]string, len(rows))
	for i, r := range rows {
		switch {
		case i > 0 && rows[i-1].Case == r.Case:
			labels[i] = "  " + r.Metric
		case r.Metric == r.Unit:
			labels[i] = r.Case
		default:
			labels[i] = r.Case + " " + r.Metric
		}
	}
	return labels
}

// fmtCell prints a value with its ratios: against kfake for every other
// target, against standalone for the cluster, and against the machine
// limit for Chronik and external targets.
func (rep *Report) fmtCell(r *Row, name string, c *Cell) string {
	switch {
	case c.Failed != "":
		return "failed (" + shorten(c.Failed, 120) + ")"
	case c.Skip != "":
		return "skipped (" + shorten(c.Skip, 120) + ")"
	}
	s := fmtValue(c.Value, r.Unit)
	if name == TargetKfake {
		return s
	}
	var ratios []string
	if k := r.Cells[TargetKfake]; k.ok() && k.Value > 0 {
		ratios = append(ratios, fmt.Sprintf("%.2fx kfake", c.Value/k.Value))
	}
	if name == TargetCluster {
		if sa := r.Cells[TargetStandalone]; sa.ok() && sa.Value > 0 {
			ratios = append(ratios, fmt.Sprintf("%.2fx standalone", c.Value/sa.Value))
		}
	}
	if l := rep.limit(r.Limit); r.Limit != "" && l > 0 {
		ratios = append(ratios, fmt.Sprintf("%.2fx %s", c.Value/l, r.Limit))
	}
	if len(ratios) > 0 {
		s += " (" + strings.Join(ratios, ", ") + ")"
	}
	return s
}

func fmtValue(v float64, unit string) string {
	switch unit {
	case "rec/s":
		switch {
		case v >= 1e6:
			return fmt.Sprintf("%.2fM rec/s", v/1e6)
		case v >= 1e3:
			return fmt.Sprintf("%.1fk rec/s", v/1e3)
		}
		return fmt.Sprintf("%.0f rec/s", v)
	case "ms":
		if v >= 100 {
			return fmt.Sprintf("%.0f ms", v)
		}
		return fmt.Sprintf("%.2f ms", v)
	case "%core":
		return fmt.Sprintf("%.1f%% core", v)
	case "s":
		if v < 1 {
			return fmt.Sprintf("%.3f s", v)
		}
		return fmt.Sprintf("%.2f s", v)
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}

func shorten(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// WriteJSON writes <dir>/<timestamp>.json and <dir>/latest.json and returns
// the first path.
func (rep *Report) WriteJSON(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("write results: %w", err)
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", fmt.Errorf("write results: %w", err)
	}
	b = append(b, '\n')
	path := filepath.Join(dir, rep.Started.UTC().Format("20060102T150405Z")+".json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return "", fmt.Errorf("write results: %w", err)
	}
	latest := filepath.Join(dir, "latest.json")
	tmp := latest + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return "", fmt.Errorf("write results: %w", err)
	}
	if err := os.Rename(tmp, latest); err != nil {
		return "", fmt.Errorf("write results: %w", err)
	}
	return path, nil
}
