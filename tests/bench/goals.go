package bench

import (
	"fmt"
	"io"
	"strings"
)

// Goal is one of the performance targets Chronik is held to, judged on the
// figures of this run. Ratios compare two targets measured in the same
// run, so they hold up on a noisy machine better than absolute figures.
type Goal struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"` // the ratio or figure judged
	Limit float64 `json:"limit"`
	Unit  string  `json:"unit"` // "x" for a ratio
	// AtMost is true when Value must not exceed Limit, false when it
	// must reach it.
	AtMost bool `json:"at_most"`
	Met    bool `json:"met"`
	// Missing says why the goal could not be judged; Met is then false.
	Missing string `json:"missing,omitempty"`
	// Bound is what this machine and this harness allow of Value, where
	// the run shows it: how much replication can write to the one disk,
	// or the latency the harness measures for a peer with no disk at all.
	Bound string `json:"bound,omitempty"`
}

// goalRule judges one goal over every row its match accepts, one Goal per
// row (a case measured at p=1 and p=16 gives two).
type goalRule struct {
	name   string // completed with the row's case
	match  func(r *Row) bool
	judge  func(r *Row) (value float64, missing string)
	limit  func(rep *Report) float64
	unit   string
	atMost bool
	under  bool   // with atMost: the limit itself already misses
	absent string // the row name reported when no row matched
	bound  func(rep *Report, r *Row) string
}

// goalRules are the targets of the benchmark issue (#6).
var goalRules = []goalRule{
	{
		name:  "standalone %s MB/s >= 0.9x kfake",
		match: caseMetric("produce 1KiB acks=-1 ", "MB/s"),
		judge: ratio(TargetStandalone, TargetKfake), limit: fixed(0.9), unit: "x",
		absent: "produce 1KiB acks=-1",
	},
	{
		name:  "standalone %s rec/s >= 1.5x kfake",
		match: caseMetric("produce 100B acks=-1 ", "rec/s"),
		judge: ratio(TargetStandalone, TargetKfake), limit: fixed(1.5), unit: "x",
		absent: "produce 100B acks=-1",
	},
	{
		name:  "standalone %s MB/s >= 1.5x kfake",
		match: caseMetric("consume ", "MB/s"),
		judge: ratio(TargetStandalone, TargetKfake), limit: fixed(1.5), unit: "x",
		absent: "consume",
	},
	{
		name:  "standalone %s p99 <= 3 x fsync p99 + 1 ms",
		match: caseMetric("steady produce ", "p99"),
		judge: value(TargetStandalone),
		limit: func(rep *Report) float64 {
			if rep.Machine.Fsync.P99Ms <= 0 {
				return 0
			}
			return 3*rep.Machine.Fsync.P99Ms + 1
		},
		unit: "ms", atMost: true,
		absent: "steady produce",
		bound:  harnessFloor(TargetKfake),
	},
	{
		name:  "cluster rf3 %s MB/s >= 0.4x standalone",
		match: caseMetric("produce 1KiB acks=-1 ", "MB/s"),
		judge: ratio(TargetCluster, TargetStandalone), limit: fixed(0.4), unit: "x",
		absent: "produce 1KiB acks=-1",
		bound:  diskBound(TargetCluster, TargetStandalone),
	},
	{
		name:  "cluster rf3 %s p50 <= 2 s",
		match: caseMetric("failover kill -9 leader ", "p50"),
		judge: value(TargetCluster), limit: fixed(2), unit: "s", atMost: true,
		absent: "failover kill -9 leader",
	},
	{
		name:  "cluster rf3 %s p50 <= 1 s",
		match: caseMetric("failover kill -9 __meta leader ", "p50"),
		judge: value(TargetCluster), limit: fixed(1), unit: "s", atMost: true,
		absent: "failover kill -9 __meta leader",
	},
	{
		name:  "cluster rf3 %s idle CPU < 25%% of a core per broker",
		match: caseMetric("scale 1000 partition replicas", "idle CPU"),
		judge: value(TargetCluster), limit: fixed(25), unit: "%core", atMost: true, under: true,
		absent: "scale 1000 partition replicas",
	},
}

// caseMetric matches rows whose case starts with prefix and whose metric
// is metric.
func caseMetric(prefix, metric string) func(*Row) bool {
	return func(r *Row) bool { return strings.HasPrefix(r.Case, prefix) && r.Metric == metric }
}

func fixed(v float64) func(*Report) float64 { return func(*Report) float64 { return v } }

// value judges target's own figure.
func value(target string) func(*Row) (float64, string) {
	return func(r *Row) (float64, string) {
		c := r.Cells[target]
		if why := cellMissing(target, c); why != "" {
			return 0, why
		}
		return c.Value, ""
	}
}

// ratio judges num's figure over den's.
func ratio(num, den string) func(*Row) (float64, string) {
	return func(r *Row) (float64, string) {
		n, d := r.Cells[num], r.Cells[den]
		if why := cellMissing(num, n); why != "" {
			return 0, why
		}
		if why := cellMissing(den, d); why != "" {
			return 0, why
		}
		if d.Value <= 0 {
			return 0, den + " measured 0"
		}
		return n.Value / d.Value, ""
	}
}

func cellMissing(target string, c *Cell) string {
	switch {
	case c == nil:
		return target + " did not run"
	case c.Failed != "":
		return target + " failed"
	case c.Skip != "":
		return target + " skipped (" + c.Skip + ")"
	}
	return ""
}

// diskBound says how far num's MB/s could reach against den's if num
// wrote as fast as the machine's disk probe: every replica writes its
// copies of each byte (Raft log and partition log) to the same disk, and
// the run's disk write row tells how many copies that was.
func diskBound(num, den string) func(rep *Report, r *Row) string {
	return func(rep *Report, r *Row) string {
		var disk *Row
		for _, d := range rep.Rows {
			if d.Case == r.Case && d.Metric == metricDiskWrite {
				disk = d
			}
		}
		if disk == nil || rep.Machine.SeqMBps <= 0 {
			return ""
		}
		n, d, w := r.Cells[num], r.Cells[den], disk.Cells[num]
		if !n.ok() || !d.ok() || !w.ok() || n.Value <= 0 || d.Value <= 0 || w.Value <= 0 {
			return ""
		}
		copies := w.Value / n.Value
		return fmt.Sprintf("the disk allows at most %.2fx: %.1f copies of each byte at %.0f MB/s",
			rep.Machine.SeqMBps/copies/d.Value, copies, rep.Machine.SeqMBps)
	}
}

// harnessFloor quotes peer's figure in the row: kfake never touches a
// disk, so its latency is what the client, loopback and scheduler add by
// themselves.
func harnessFloor(peer string) func(rep *Report, r *Row) string {
	return func(rep *Report, r *Row) string {
		c := r.Cells[peer]
		if !c.ok() {
			return ""
		}
		return fmt.Sprintf("%s, which never fsyncs, measured %s here", peer, fmtValue(c.Value, r.Unit))
	}
}

// judgeGoals evaluates every goal rule on the report's rows.
func (rep *Report) judgeGoals() []Goal {
	var goals []Goal
	for _, g := range goalRules {
		found := false
		for _, r := range rep.Rows {
			if !g.match(r) {
				continue
			}
			found = true
			goal := Goal{Name: fmt.Sprintf(g.name, r.Case), Limit: g.limit(rep), Unit: g.unit, AtMost: g.atMost}
			goal.Value, goal.Missing = g.judge(r)
			if g.bound != nil && goal.Missing == "" {
				goal.Bound = g.bound(rep, r)
			}
			switch {
			case goal.Missing != "":
			case goal.Limit <= 0:
				goal.Missing = "no machine limit measured"
			case g.under:
				goal.Met = goal.Value < goal.Limit
			case g.atMost:
				goal.Met = goal.Value <= goal.Limit
			default:
				goal.Met = goal.Value >= goal.Limit
			}
			goals = append(goals, goal)
		}
		if !found {
			goals = append(goals, Goal{Name: fmt.Sprintf(g.name, g.absent), Limit: g.limit(rep), Unit: g.unit,
				AtMost: g.atMost, Missing: "not in this run's plan"})
		}
	}
	return goals
}

// writeGoals prints the goals under the table, one line each.
func writeGoals(w io.Writer, goals []Goal) {
	met := 0
	for _, g := range goals {
		if g.Met {
			met++
		}
	}
	fmt.Fprintf(w, "goals: %d of %d met (ratios are within this run)\n", met, len(goals))
	for _, g := range goals {
		verdict, figure := "met   ", fmtGoalValue(g)
		switch {
		case g.Missing != "":
			verdict, figure = "n/a   ", g.Missing
		case !g.Met:
			verdict = "MISSED"
		}
		if g.Bound != "" {
			figure += " (" + g.Bound + ")"
		}
		fmt.Fprintf(w, "  %s %s: %s\n", verdict, g.Name, figure)
	}
}

// fmtGoalValue prints a ratio alone (its limit is in the goal's name)
// and an absolute figure with the limit it was held to.
func fmtGoalValue(g Goal) string {
	if g.Unit == "x" {
		return fmt.Sprintf("%.2fx", g.Value)
	}
	return fmtValue(g.Value, g.Unit) + ", limit " + fmtValue(g.Limit, g.Unit)
}
