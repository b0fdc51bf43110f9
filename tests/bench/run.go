package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrBudget is the cause of every part cut short by the run's time budget.
var ErrBudget = errors.New("bench: time budget used up")

// runner carries one run's state.
type runner struct {
	cfg      Config
	log      *slog.Logger
	rep      *Report
	work     string
	payloads *payloads
	seq      atomic.Int64
	down     map[string]string // target name -> why it is not available
}

// Run performs one benchmark run as cfg says, prints the table to cfg.Out
// and writes the JSON results. Parts that could not run are listed in
// Report.Skipped, parts that ran and failed in Report.Failures; the error
// is for a run that could not happen at all.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Logger == nil || cfg.Out == nil {
		return nil, errors.New("bench: Config needs Logger and Out")
	}
	if cfg.KfakeMode == "" {
		cfg.KfakeMode = "child"
	}
	if cfg.ExternalRF < 1 {
		cfg.ExternalRF = 1
	}
	work, err := mkScratch(cfg.WorkRoot, "run-*")
	if err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, log: cfg.Logger, work: work, payloads: newPayloads(64 << 10), down: map[string]string{}}
	defer r.cleanup()
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.Plan.Budget, ErrBudget)
	defer cancel()
	r.rep = &Report{Started: time.Now(), Plan: cfg.Plan, Host: hostInfo(), Settings: r.settings()}

	r.log.Info("measuring machine limits", "dir", work)
	r.rep.Machine = measureMachine(ctx, work, cfg.Plan)
	for _, e := range r.rep.Machine.Errors {
		r.rep.Failures = append(r.rep.Failures, "machine: "+e)
	}
	names := append([]string(nil), cfg.Targets...)
	for _, x := range cfg.External {
		names = append(names, x.Name)
	}
	for _, name := range names {
		r.loadPhase(ctx, name)
	}
	if !slices.Contains(names, TargetCluster) {
		r.skip("failover: cluster target not selected")
	}
	for _, name := range names {
		r.scalePhase(ctx, name)
	}
	r.rep.Seconds = time.Since(r.rep.Started).Seconds()
	r.rep.Host.LoadAvgEnd = loadAvg()
	if r.cfg.Plan.Name == FullPlan().Name {
		// The quick plan's cases last a second or less: too short to
		// judge by.
		r.rep.Goals = r.rep.judgeGoals()
	}
	r.rep.WriteTable(cfg.Out)
	if cfg.ResultsDir != "" {
		path, err := r.rep.WriteJSON(cfg.ResultsDir)
		if err != nil {
			return r.rep, err
		}
		fmt.Fprintf(cfg.Out, "results: %s and %s\n", path, filepath.Join(cfg.ResultsDir, "latest.json"))
	}
	return r.rep, nil
}

func (r *runner) cleanup() {
	if r.cfg.KeepData {
		r.log.Info("kept scratch data and server logs", "dir", r.work)
		return
	}
	if err := os.RemoveAll(r.work); err != nil {
		r.log.Warn("remove scratch data", "dir", r.work, "err", err)
	}
}

// topicName is a fresh topic name for this run.
func (r *runner) topicName(what string) string {
	return fmt.Sprintf("bench-%d-%s", r.seq.Add(1), what)
}

func (r *runner) skip(s string) {
	r.log.Warn("skipped", "what", s)
	r.rep.Skipped = append(r.rep.Skipped, s)
}

// metric is one figure of a part, for record.
type metric struct {
	name, unit, limit string
	v                 float64
}

// record files a part's figures under case kase for target name, or its
// error in every one of them: as skipped when the budget ran out, as
// failed otherwise.
func (r *runner) record(ctx context.Context, section, kase, name string, ms []metric, err error) {
	var cell func(v float64) *Cell
	switch {
	case err == nil:
		cell = func(v float64) *Cell { return &Cell{Value: v} }
	case ctx.Err() != nil && errors.Is(context.Cause(ctx), ErrBudget):
		r.skip(fmt.Sprintf("%s on %s: time budget used up", kase, name))
		cell = func(float64) *Cell { return &Cell{Skip: "time budget"} }
	default:
		r.log.Error("part failed", "target", name, "case", kase, "err", err)
		r.rep.Failures = append(r.rep.Failures, fmt.Sprintf("%s on %s: %v", kase, name, err))
		cell = func(float64) *Cell { return &Cell{Failed: err.Error()} }
	}
	for _, m := range ms {
		r.rep.row(section, kase, m.name, m.unit, m.limit).Cells[name] = cell(m.v)
	}
}

// loadPhase starts one target and runs produce, consume, steady and (on
// the cluster) failover against it, then stops it.
func (r *runner) loadPhase(ctx context.Context, name string) {
	st := TargetStatus{target: target{Name: name, Label: name}}
	t, err := r.startTarget(ctx, name)
	if err != nil {
		st.Reason = err.Error()
		r.down[name] = st.Reason
		r.rep.Targets = append(r.rep.Targets, st)
		r.skip(fmt.Sprintf("%s: not available (%s)", name, st.Reason))
		if name == TargetCluster {
			r.skip("failover: cluster not available")
		}
		return
	}
	defer t.close()
	st.target, st.Available = *t, true
	st.nodes, st.inproc = nil, nil
	r.rep.Targets = append(r.rep.Targets, st)
	r.log.Info("target ready", "target", name, "brokers", t.Brokers)
	for _, c := range r.cfg.Plan.Cases {
		if r.gone(ctx, t, c.Name()) {
			continue
		}
		r.settle(ctx)
		res, err := r.produceCase(ctx, t, c)
		lim, lim50, lim99 := limitNet, "", ""
		if c.Acks == -1 {
			lim, lim50, lim99 = limitDisk, limitFsync50, limitFsync99
		}
		r.record(ctx, "produce", c.Name(), name, append([]metric{
			{"MB/s", "MB/s", lim, res.mbps()},
			{"rec/s", "rec/s", "", res.recsps()},
			{"p50", "ms", lim50, res.Latency.P50Ms},
			{"p99", "ms", lim99, res.Latency.P99Ms},
			{"p999", "ms", lim99, res.Latency.P999Ms},
		}, res.diskMetric()...), err)
	}
	kase := fmt.Sprintf("consume 1KiB p=%d from start", r.cfg.Plan.ConsumeParts)
	if !r.gone(ctx, t, kase) {
		r.settle(ctx)
		res, err := r.consumeCase(ctx, t)
		r.record(ctx, "consume", kase, name, []metric{
			{"MB/s", "MB/s", limitNet, mbps(res.Bytes, res.Elapsed)},
			{"rec/s", "rec/s", "", perSec(res.Records, res.Elapsed)},
		}, err)
	}
	r.steadyPhase(ctx, t)
	if name == TargetCluster {
		r.failoverPhase(ctx, t)
	}
}

// settleLimit bounds the wait for sync(2) before a case.
const settleLimit = 30 * time.Second

// settle writes the machine's dirty page cache out before a case: the
// writeback of the case before (a consume fill writes gigabytes) would
// otherwise run under this one and bill it with fsync latency it did not
// cause. After settleLimit the case starts anyway.
func (r *runner) settle(ctx context.Context) {
	done := make(chan struct{})
	start := time.Now()
	go func() { // not joined on the timeout path: sync(2) cannot be cut short
		syscall.Sync()
		close(done)
	}()
	limit := time.NewTimer(settleLimit)
	defer limit.Stop()
	select {
	case <-done:
		r.log.Debug("settled", "took", time.Since(start))
	case <-ctx.Done():
	case <-limit.C:
		r.log.Warn("sync(2) still writing out the page cache; starting the case anyway", "after", settleLimit)
	}
}

func (r *runner) steadyPhase(ctx context.Context, t *target) {
	p := r.cfg.Plan
	kase := fmt.Sprintf("steady produce %s acks=-1 @%d/s", sizeLabel(p.SteadySize), p.SteadyRate)
	e2e := fmt.Sprintf("end-to-end %s @%d/s", sizeLabel(p.SteadySize), p.SteadyRate)
	if r.gone(ctx, t, kase) {
		return
	}
	r.settle(ctx)
	res, err := r.steadyCase(ctx, t)
	r.record(ctx, "steady", kase, t.Name, []metric{
		{"p50", "ms", limitFsync50, res.Produce.P50Ms},
		{"p99", "ms", limitFsync99, res.Produce.P99Ms},
	}, err)
	r.record(ctx, "steady", e2e, t.Name, []metric{
		{"p50", "ms", limitFsync50, res.E2E.P50Ms},
		{"p99", "ms", limitFsync99, res.E2E.P99Ms},
	}, err)
}

func (r *runner) failoverPhase(ctx context.Context, t *target) {
	kase := fmt.Sprintf("failover kill -9 leader (x%d)", r.cfg.Plan.FailoverKills)
	if r.gone(ctx, t, kase) {
		return
	}
	st, err := r.failover(ctx, t)
	if err != nil {
		st.Failure = err.Error()
	}
	r.rep.Failover = append(r.rep.Failover, st)
	r.record(ctx, "failover", kase, t.Name, []metric{
		{"p50", "s", "", st.P50S},
		{"max", "s", "", st.MaxS},
	}, err)

	kase = fmt.Sprintf("failover kill -9 __meta leader (x%d)", r.cfg.Plan.FailoverKills)
	if r.gone(ctx, t, kase) {
		return
	}
	st, err = r.failoverMeta(ctx, t)
	if err != nil {
		st.Failure = err.Error()
	}
	st.Group = "__meta"
	r.rep.Failover = append(r.rep.Failover, st)
	r.record(ctx, "failover", kase, t.Name, []metric{
		{"p50", "s", "", st.P50S},
		{"max", "s", "", st.MaxS},
	}, err)
}

// gone reports, and files as skipped, a part that cannot run because the
// budget is used up or a process of the target has died.
func (r *runner) gone(ctx context.Context, t *target, kase string) bool {
	if ctx.Err() != nil {
		r.skip(fmt.Sprintf("%s on %s: %v", kase, t.Name, context.Cause(ctx)))
		return true
	}
	for _, n := range t.nodes {
		select {
		case <-n.exited():
			r.skip(fmt.Sprintf("%s on %s: %s died earlier (%s)", kase, t.Name, n.name, n.lastLine()))
			return true
		default:
		}
	}
	return false
}

// startTarget starts a built-in target in its own scratch directory, or
// checks an external one.
func (r *runner) startTarget(ctx context.Context, name string) (*target, error) {
	if why, ok := r.down[name]; ok {
		return nil, errors.New(why)
	}
	if r.cfg.NoServer != "" && (name == TargetStandalone || name == TargetCluster) {
		return nil, errors.New(r.cfg.NoServer)
	}
	r.log.Info("starting target", "target", name)
	return r.start(ctx, name, filepath.Join(r.work, name))
}

// scalePhase measures idle CPU and RSS at each scale level on fresh
// instances of a target that has processes of its own.
func (r *runner) scalePhase(ctx context.Context, name string) {
	if why, ok := r.down[name]; ok {
		r.skip(fmt.Sprintf("scale on %s: not available (%s)", name, why))
		return
	}
	if name != TargetKfake && name != TargetStandalone && name != TargetCluster {
		r.skip(fmt.Sprintf("scale on %s: external target, no process to measure", name))
		return
	}
	if name == TargetKfake && r.cfg.KfakeMode == "inproc" {
		r.skip("scale on kfake: in-process, no process of its own to measure")
		return
	}
	for _, level := range r.cfg.Plan.ScaleLevels {
		kase := fmt.Sprintf("scale %d partition replicas", level)
		if level == 1 {
			kase = "scale 1 partition replica"
		}
		if ctx.Err() != nil {
			r.skip(fmt.Sprintf("%s on %s: %v", kase, name, context.Cause(ctx)))
			continue
		}
		r.log.Info("scale", "target", name, "partitions", level)
		pt, err := r.scaleLevel(ctx, name, level)
		if err == nil {
			r.rep.Scale = append(r.rep.Scale, pt)
		}
		r.record(ctx, "scale", kase, name, []metric{
			{"create", "s", "", pt.CreateS},
			{"idle CPU", "%core", "", pt.CPUPct},
			{"RSS", "MB", "", pt.RSSMB},
		}, err)
		if pt.RaftTimings != "" {
			r.rep.row("scale", kase, "idle CPU", "%core", "").Note = "cluster partition raft: " + pt.RaftTimings
		}
	}
}

func hostInfo() HostInfo {
	h := HostInfo{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Kernel: "unknown", LoadAvg: loadAvg(),
		BusyAtStart: cpuBusy(time.Second)}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	return h
}

// cpuBusy samples /proc/stat over window and returns the share of all
// CPUs' time that was not idle, in percent, or -1 when it cannot tell. The
// load average lags by minutes; this sees a process still running now.
func cpuBusy(window time.Duration) float64 {
	busy1, total1, ok1 := cpuTimes()
	time.Sleep(window)
	busy2, total2, ok2 := cpuTimes()
	if !ok1 || !ok2 || total2 <= total1 {
		return -1
	}
	return 100 * float64(busy2-busy1) / float64(total2-total1)
}

// cpuTimes returns the non-idle and total jiffies of the "cpu" line of
// /proc/stat (idle and iowait count as idle).
func cpuTimes() (busy, total int64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, false
	}
	var idle int64
	for i, v := range f[1:min(len(f), 9)] { // user..steal; guest time is already in user
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return total - idle, total, true
}

// loadAvg is the first three fields of /proc/loadavg: other work on the
// machine skews every figure, so the report says how busy it was.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// settings are the lines that say how the figures were made.
func (r *runner) settings() []string {
	p := r.cfg.Plan
	kfake := "kfake: franz-go's in-memory cluster, 1 broker, in a child process (this executable re-run)"
	if r.cfg.KfakeMode == "inproc" {
		kfake = "kfake: franz-go's in-memory cluster, 1 broker, in this process (shares the driver's CPU)"
	}
	return []string{
		"MB = 10^6 bytes of record payload; payloads are random bytes; no client compression",
		fmt.Sprintf("produce: %d concurrent kgo producers per case, linger %v, batch max %dKiB, max buffered %dMiB per producer, default sticky partitioner;",
			p.Producers, p.Linger, produceBatchBytes>>10, produceBufferedBytes>>20),
		fmt.Sprintf("  acks=-1 idempotent, acks=1 not (both %d requests in flight per broker); each case <= %v and <= %d records / %dMiB; latency = Produce() to ack",
			produceInflight, p.CaseDuration, p.CaseMaxRecs, p.CaseMaxBytes>>20),
		fmt.Sprintf("consume: %d x 1KiB records in %d partitions filled with acks=1, read from the start %d times by a fresh direct-partition consumer, median read; fetch max wait %v",
			p.ConsumeRecs, p.ConsumeParts, max(p.ConsumeReads, 1), consumeFetchMaxWait),
		fmt.Sprintf("steady: %s records at %d/s for %v, acks=-1, linger 0, 1 partition; produce latency from scheduled send to ack; end-to-end from Produce() to consumer receipt",
			sizeLabel(p.SteadySize), p.SteadyRate, p.SteadyFor),
		fmt.Sprintf("failover: %d x kill -9 of the partition leader, time to the next acknowledged acks=-1 produce (client metadata min age 50ms, retry backoff 50ms); %d x kill -9 of the __meta leader, time to the next topic created", p.FailoverKills, p.FailoverKills),
		fmt.Sprintf("scale: fresh instance per level %v, one topic, settle max(%v, creation time), idle window %v; CPU from /proc/<pid>/stat utime+stime, RSS from VmRSS; cluster = mean of its brokers",
			p.ScaleLevels, p.ScaleSettle, p.ScaleWindow),
		kfake,
		fmt.Sprintf("every produce, consume and steady case starts after sync(2) has written out the page cache (at most %v), so no case pays for the one before it", settleLimit),
		"disk write: bytes the target's processes wrote to storage (/proc/<pid>/io write_bytes, every node) per second of the case; payload MB/s x copies written",
		"ratios: every figure against kfake; cluster also against standalone; Chronik figures against the machine limit named (disk, net, fsync p50/p99)",
	}
}
