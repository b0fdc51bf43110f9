package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
)

func TestMain(m *testing.M) {
	MaybeServeKfake() // the kfake child of TestQuickAgainstKfake is this binary
	os.Exit(m.Run())
}

// tWriter sends each line written to it to t.Log.
type tWriter struct {
	t  testing.TB
	mu sync.Mutex
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(&tWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// tinyPlan is the quick plan shrunk until a whole run takes seconds.
func tinyPlan() Plan {
	p := QuickPlan()
	p.Cases = []ProduceCase{{RecordSize: 1024, Acks: -1, Partitions: 1}, {RecordSize: 100, Acks: 1, Partitions: 4}}
	p.Producers = 2
	p.CaseDuration = 150 * time.Millisecond
	p.CaseMaxRecs = 5000
	p.ConsumeRecs = 2000
	p.ConsumeParts = 4
	p.SteadyRate = 200
	p.SteadyFor = 250 * time.Millisecond
	p.FsyncOps = 20
	p.SeqBytes = 8 << 20
	p.SeqSyncEvery = 2 << 20
	p.NetBytes = 64 << 20
	p.ScaleLevels = []int{1, 8}
	p.ScaleSettle = 50 * time.Millisecond
	p.ScaleWindow = 200 * time.Millisecond
	p.Budget = 60 * time.Second
	return p
}

// TestQuickAgainstKfake runs the driver end to end: kfake in a child
// process, an in-process kfake given as an external target, and the server
// targets made unavailable, which must be reported as skipped, not failed.
func TestQuickAgainstKfake(t *testing.T) {
	ext, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close()
	results := t.TempDir()
	var out bytes.Buffer
	cfg := Config{
		Logger:     testLogger(t),
		Out:        &out,
		Plan:       tinyPlan(),
		Targets:    []string{TargetKfake, TargetStandalone, TargetCluster},
		External:   []External{{Name: "ext", Brokers: ext.ListenAddrs()}},
		ServerBin:  filepath.Join(t.TempDir(), "no-such-chronik-server"),
		WorkRoot:   t.TempDir(),
		ResultsDir: results,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rep, err := Run(ctx, cfg)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) > 0 {
		t.Fatalf("failures: %q", rep.Failures)
	}
	for _, want := range []string{
		"standalone: not available (no server binary at",
		"cluster: not available (no server binary at",
		"skipped: failover: cluster not available",
		"produce 1KiB acks=-1 p=1",
		"x kfake",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}
	m := rep.Machine
	if m.Fsync.Count == 0 || m.Fsync.P50Ms <= 0 || m.SeqMBps <= 0 || m.LoopbackMBps <= 0 {
		t.Errorf("machine limits missing: %+v", m)
	}
	checkCells(t, rep, TargetKfake, "produce", "consume", "steady", "scale")
	checkCells(t, rep, "ext", "produce", "consume", "steady")
	checkJSON(t, results, rep)
}

// checkCells wants a positive figure from target in every row of the given
// sections, except idle CPU, which may truly be zero over a short window.
func checkCells(t *testing.T, rep *Report, target string, sections ...string) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range rep.Rows {
		c := r.Cells[target]
		if !contains(sections, r.Section) {
			continue
		}
		seen[r.Section] = true
		if r.Metric == metricDiskWrite {
			checkDiskCell(t, r, target, c)
			continue
		}
		if !c.ok() {
			t.Errorf("%s %s on %s: %+v", r.Case, r.Metric, target, c)
			continue
		}
		if c.Value <= 0 && r.Metric != "idle CPU" && r.Metric != "create" {
			t.Errorf("%s %s on %s: %v", r.Case, r.Metric, target, c.Value)
		}
	}
	for _, s := range sections {
		if !seen[s] {
			t.Errorf("no %s rows for %s", s, target)
		}
	}
}

// checkDiskCell wants a disk write figure, zero or more, from a target that
// runs processes of its own (kfake writes nothing), and none from an
// external one.
func checkDiskCell(t *testing.T, r *Row, target string, c *Cell) {
	t.Helper()
	switch external := target != TargetKfake && target != TargetStandalone && target != TargetCluster; {
	case external && c != nil:
		t.Errorf("%s %s on external %s: %+v, want no figure", r.Case, r.Metric, target, c)
	case !external && (!c.ok() || c.Value < 0):
		t.Errorf("%s %s on %s: %+v", r.Case, r.Metric, target, c)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func checkJSON(t *testing.T, dir string, rep *Report) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("latest.json: %v", err)
	}
	if len(back.Rows) != len(rep.Rows) || len(back.Targets) != 4 || back.Plan.Name != "quick" {
		t.Errorf("latest.json: %d rows (want %d), %d targets", len(back.Rows), len(rep.Rows), len(back.Targets))
	}
	stamped, _ := filepath.Glob(filepath.Join(dir, "2*.json"))
	if len(stamped) != 1 {
		t.Errorf("timestamped results: %v", stamped)
	}
}

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 1000; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {0.999, 999 * time.Millisecond}, {1, time.Second}} {
		if got := percentile(s, c.q); got != c.want {
			t.Errorf("p%v = %v, want %v", c.q*100, got, c.want)
		}
	}
	if got := percentile(s[:1], 0.999); got != time.Millisecond {
		t.Errorf("one sample: %v", got)
	}
	sum := summarize([]time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond})
	if sum.P50Ms != 2 || sum.MaxMs != 3 || sum.Count != 3 {
		t.Errorf("summary %+v", sum)
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := ParseFlags([]string{"--quick", "--targets", "kfake,cluster", "--target", "rp=127.0.0.5:9092,127.0.0.6:9092"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Plan.Name != "quick" || len(cfg.Targets) != 2 || len(cfg.External) != 1 || len(cfg.External[0].Brokers) != 2 {
		t.Errorf("cfg %+v", cfg)
	}
	if def, _ := ParseFlags(nil, io.Discard); def.Plan.Name != "full" || len(def.Targets) != 3 || len(def.Plan.Cases) != 8 {
		t.Errorf("defaults %+v", def)
	}
	for _, bad := range [][]string{
		{"--target", "far=10.0.0.1:9092"},
		{"--target", "h=localhost:9092"},
		{"--target", "kfake=127.0.0.1:9092"},
		{"--targets", "redpanda"},
		{"--kfake", "remote"},
		{"extra"},
	} {
		if _, err := ParseFlags(bad, io.Discard); !errors.Is(err, ErrUsage) {
			t.Errorf("%q: err %v, want ErrUsage", bad, err)
		}
	}
}

func TestClusterTOML(t *testing.T) {
	got := clusterTOML(2, []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}, 19092, 19093, 300)
	for _, want := range []string{
		"enabled = true\nnode_id = 2\nreplication_factor = 3\nmin_insync_replicas = 2\n",
		"[raft]\nelection_timeout_ms = 300\nheartbeat_interval_ms = 30\n",
		"[[peers]]\nid = 3\naddr = \"127.0.0.3:19092\"\nraft_port = 19093\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("cluster.toml lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(clusterTOML(1, []string{"127.0.0.1"}, 1, 2, 0), "[raft]") {
		t.Error("[raft] written without an election timeout")
	}
}

func TestFmtCellRatios(t *testing.T) {
	rep := &Report{Machine: MachineLimits{SeqMBps: 400, Fsync: LatencySummary{P99Ms: 2}}}
	r := rep.row("produce", "produce 1KiB acks=-1 p=1", "MB/s", "MB/s", limitDisk)
	r.Cells[TargetKfake] = &Cell{Value: 200}
	r.Cells[TargetStandalone] = &Cell{Value: 100}
	r.Cells[TargetCluster] = &Cell{Value: 50}
	r.Cells["ext"] = &Cell{Failed: "boom"}
	for name, want := range map[string]string{
		TargetKfake:      "200.0 MB/s",
		TargetStandalone: "100.0 MB/s (0.50x kfake, 0.25x disk)",
		TargetCluster:    "50.0 MB/s (0.25x kfake, 0.50x standalone, 0.12x disk)",
		"ext":            "failed (boom)",
	} {
		if got := rep.fmtCell(r, name, r.Cells[name]); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	lat := rep.row("produce", "produce 1KiB acks=-1 p=1", "p99", "ms", limitFsync99)
	lat.Cells[TargetStandalone] = &Cell{Value: 5}
	if got := rep.fmtCell(lat, TargetStandalone, lat.Cells[TargetStandalone]); got != "5.00 ms (2.50x fsync p99)" {
		t.Errorf("latency cell %q", got)
	}
	labels := rowLabels(rep.Rows)
	if labels[0] != "produce 1KiB acks=-1 p=1" || labels[1] != "  p99" {
		t.Errorf("labels %q", labels)
	}
}

func TestProcStats(t *testing.T) {
	ticks, err := procTicks(os.Getpid())
	if err != nil || ticks < 0 {
		t.Fatalf("ticks %d, %v", ticks, err)
	}
	rss, err := procRSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Fatalf("rss %d, %v", rss, err)
	}
	// Dirty 1 MiB of a new file and see it counted, fsync or not (tmpfs
	// has no storage to count).
	before, err := procWriteBytes(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if fsType(dir) == "tmpfs" {
		t.Skip("temporary directory on tmpfs")
	}
	f, err := os.CreateTemp(dir, "wb-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	after, err := procWriteBytes(os.Getpid())
	if err != nil || after-before < 1<<20 {
		t.Fatalf("write_bytes went from %d to %d (%v), want at least 1 MiB more", before, after, err)
	}
	if _, err := procField(os.Getpid(), "io", "no_such_field:"); err == nil {
		t.Fatal("a missing field gave no error")
	}
}

// TestCPUBusy checks the sample of the machine's CPU use taken before a run
// sees a busy loop on this process.
func TestCPUBusy(t *testing.T) {
	if b := cpuBusy(50 * time.Millisecond); b < 0 || b > 100 {
		t.Fatalf("idle machine: busy %.1f%%, want 0-100", b)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // joined below
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	b := cpuBusy(300 * time.Millisecond)
	close(stop)
	<-done
	// One spinning goroutine keeps at least one CPU busy.
	if want := 100 / float64(runtime.NumCPU()) * 0.8; b < want {
		t.Fatalf("with a goroutine spinning: busy %.1f%%, want at least %.0f%%", b, want)
	}
}

func TestFreePortOnEveryLoopbackHost(t *testing.T) {
	port, err := freePort("127.0.0.1", "127.0.0.2", "127.0.0.3")
	if err != nil {
		t.Fatal(err)
	}
	if port <= 0 {
		t.Fatalf("port %d", port)
	}
}

// TestClusterNotAvailable starts the cluster target on stand-in servers:
// one that never becomes ready and one that exits at once. Both must come
// back as a reason, with every process stopped.
func TestClusterNotAvailable(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ script, want string }{
		{"#!/bin/sh\nexec sleep 30\n", "node1, node2, node3 not ready within 300ms"},
		{"#!/bin/sh\necho 'cluster mode is not built yet' >&2\nexit 1\n", "exited: cluster mode is not built yet"},
	} {
		bin := filepath.Join(dir, "fake-server")
		if err := os.WriteFile(bin, []byte(c.script), 0o755); err != nil {
			t.Fatal(err)
		}
		p := tinyPlan()
		p.ClusterReady = 300 * time.Millisecond
		r := &runner{cfg: Config{Plan: p, ServerBin: bin}, log: testLogger(t)}
		_, err := r.start(context.Background(), TargetCluster, filepath.Join(dir, "cluster"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("start cluster on %q: %v, want %q", c.script, err, c.want)
		}
		os.Remove(bin)
	}
}

func TestLoopbackDialRefusesOtherHosts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := loopbackDial(ctx, "tcp", "10.1.2.3:9092"); err == nil || !strings.Contains(err.Error(), "127.0.0.0/8") {
		t.Fatalf("dial 10.1.2.3: %v", err)
	}
}

// TestWaitHealthy reads leader and ISR the way failover does, from a
// three-broker kfake with a fully replicated topic.
func TestWaitHealthy(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := &runner{log: testLogger(t)}
	tg := &target{Name: "three", Brokers: c.ListenAddrs(), RF: 3}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.createTopic(ctx, tg, "failover", 1); err != nil {
		t.Fatal(err)
	}
	cl, err := r.newClient(tg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	leader, err := waitHealthy(ctx, adm, "failover", 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := c.LeaderFor("failover", 0); leader != want {
		t.Errorf("leader %d, kfake says %d", leader, want)
	}
	short, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	if _, err := waitHealthy(short, adm, "failover", 4); err == nil {
		t.Error("an ISR of 3 passed for 4")
	}
}

// The scale rows print the Raft timings a cluster node logged at start.
func TestRaftTimingsFromLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node1.log")
	log := `time=2026-11-27T05:00:00Z level=INFO msg="opened log" topic=a
time=2026-11-27T05:00:00Z level=INFO msg="partition raft timings" component=raft-replicas node_id=1 heartbeat_timeout=2s election_timeout=2s commit_timeout=1s fast_timeout=600ms leader_lease_timeout=600ms probe_interval=100ms
`
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "heartbeat_timeout=2s election_timeout=2s commit_timeout=1s fast_timeout=600ms leader_lease_timeout=600ms probe_interval=100ms"
	if got := raftTimings(path); got != want {
		t.Fatalf("raftTimings = %q, want %q", got, want)
	}
	if got := raftTimings(filepath.Join(dir, "missing.log")); !strings.HasPrefix(got, "raft timings unknown") {
		t.Fatalf("missing log: %q", got)
	}
}
