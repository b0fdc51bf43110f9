package bench

import (
	"bytes"
	"strings"
	"testing"
)

func TestJudgeGoals(t *testing.T) {
	rep := &Report{Machine: MachineLimits{Fsync: LatencySummary{P99Ms: 0.5}, SeqMBps: 300}}
	set := func(kase, metric, unit string, cells map[string]*Cell) {
		r := rep.row("x", kase, metric, unit, "")
		for k, c := range cells {
			r.Cells[k] = c
		}
	}
	set("produce 1KiB acks=-1 p=1", "MB/s", "MB/s", map[string]*Cell{
		TargetKfake: {Value: 100}, TargetStandalone: {Value: 95}, TargetCluster: {Value: 30}})
	set("produce 1KiB acks=-1 p=1", metricDiskWrite, "MB/s", map[string]*Cell{
		TargetStandalone: {Value: 95}, TargetCluster: {Value: 180}})
	set("produce 1KiB acks=-1 p=16", "MB/s", "MB/s", map[string]*Cell{
		TargetKfake: {Value: 100}, TargetStandalone: {Value: 80}, TargetCluster: {Failed: "boom"}})
	set("produce 1KiB acks=1 p=1", "MB/s", "MB/s", map[string]*Cell{ // acks=1 is judged by no goal
		TargetKfake: {Value: 100}, TargetStandalone: {Value: 1}})
	set("steady produce 1KiB acks=-1 @1000/s", "p99", "ms", map[string]*Cell{TargetStandalone: {Value: 2.5}, TargetKfake: {Value: 3.25}})
	set("failover kill -9 leader (x5)", "p50", "s", map[string]*Cell{TargetCluster: {Value: 1.2}})
	set("failover kill -9 __meta leader (x5)", "p50", "s", map[string]*Cell{TargetCluster: {Value: 1.2}})
	set("scale 1000 partition replicas", "idle CPU", "%core", map[string]*Cell{TargetCluster: {Skip: "time budget"}})

	got := map[string]Goal{}
	for _, g := range rep.judgeGoals() {
		got[g.Name] = g
	}
	for name, want := range map[string]struct {
		met     bool
		value   float64
		missing string
	}{
		"standalone produce 1KiB acks=-1 p=1 MB/s >= 0.9x kfake":                        {true, 0.95, ""},
		"standalone produce 1KiB acks=-1 p=16 MB/s >= 0.9x kfake":                       {false, 0.8, ""},
		"standalone produce 100B acks=-1 rec/s >= 1.5x kfake":                           {false, 0, "not in this run's plan"},
		"cluster rf3 produce 1KiB acks=-1 p=1 MB/s >= 0.4x standalone":                  {false, 30.0 / 95, ""},
		"cluster rf3 produce 1KiB acks=-1 p=16 MB/s >= 0.4x standalone":                 {false, 0, "cluster failed"},
		"standalone steady produce 1KiB acks=-1 @1000/s p99 <= 3 x fsync p99 + 1 ms":    {true, 2.5, ""},
		"cluster rf3 failover kill -9 leader (x5) p50 <= 2 s":                           {true, 1.2, ""},
		"cluster rf3 failover kill -9 __meta leader (x5) p50 <= 1 s":                    {false, 1.2, ""},
		"cluster rf3 scale 1000 partition replicas idle CPU < 25% of a core per broker": {false, 0, "cluster skipped (time budget)"},
	} {
		g, ok := got[name]
		if !ok {
			t.Errorf("no goal %q", name)
			continue
		}
		if g.Met != want.met || g.Missing != want.missing || (want.missing == "" && g.Value != want.value) {
			t.Errorf("%s: met %v value %v missing %q, want %v %v %q", name, g.Met, g.Value, g.Missing, want.met, want.value, want.missing)
		}
	}
	if g := got["standalone steady produce 1KiB acks=-1 @1000/s p99 <= 3 x fsync p99 + 1 ms"]; g.Limit != 2.5 {
		t.Errorf("steady limit %v, want 3 x 0.5 + 1", g.Limit)
	}
	rep.row("x", "scale 1000 partition replicas", "idle CPU", "%core", "").Cells[TargetCluster] = &Cell{Value: 25}
	for _, g := range rep.judgeGoals() {
		if strings.Contains(g.Name, "idle CPU") && g.Met {
			t.Errorf("idle CPU of exactly 25%% met a goal of under 25%%: %+v", g)
		}
	}
	if len(got) != len(goalRules)+2 { // both 1KiB rules match p=1 and p=16
		t.Errorf("%d goals, want %d", len(got), len(goalRules)+2)
	}

	var out bytes.Buffer
	writeGoals(&out, rep.judgeGoals())
	for _, want := range []string{
		"goals: 3 of 10 met",
		"  met    standalone produce 1KiB acks=-1 p=1 MB/s >= 0.9x kfake: 0.95x\n",
		"  MISSED standalone produce 1KiB acks=-1 p=16 MB/s >= 0.9x kfake: 0.80x\n",
		"  n/a    cluster rf3 produce 1KiB acks=-1 p=16 MB/s >= 0.4x standalone: cluster failed\n",
		// 180 MB/s written for 30 of payload: 6 copies; 300 / 6 / 95.
		"  MISSED cluster rf3 produce 1KiB acks=-1 p=1 MB/s >= 0.4x standalone: 0.32x (the disk allows at most 0.53x: 6.0 copies of each byte at 300 MB/s)\n",
		"  met    cluster rf3 failover kill -9 leader (x5) p50 <= 2 s: 1.20 s, limit 2.00 s\n",
		"  met    standalone steady produce 1KiB acks=-1 @1000/s p99 <= 3 x fsync p99 + 1 ms: 2.50 ms, limit 2.50 ms (kfake, which never fsyncs, measured 3.25 ms here)\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("goal table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestJudgeGoalsWithoutFsyncProbe(t *testing.T) {
	rep := &Report{}
	rep.row("x", "steady produce 1KiB acks=-1 @1000/s", "p99", "ms", "").Cells[TargetStandalone] = &Cell{Value: 1}
	for _, g := range rep.judgeGoals() {
		if strings.HasPrefix(g.Name, "standalone steady") && (g.Met || g.Missing != "no machine limit measured") {
			t.Errorf("steady goal without an fsync figure: %+v", g)
		}
	}
}
