package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ScalePoint is one broker process (or the mean over a cluster's brokers)
// holding a number of partition replicas, measured idle.
type ScalePoint struct {
	Target     string    `json:"target"`
	Partitions int       `json:"partitions"`
	CreateS    float64   `json:"create_s"`     // CreateTopics until every partition has a leader
	CPUPct     float64   `json:"idle_cpu_pct"` // percent of one core, mean over brokers
	RSSMB      float64   `json:"rss_mb"`       // mean over brokers
	PerBroker  []float64 `json:"idle_cpu_pct_per_broker"`
	RSSPer     []float64 `json:"rss_mb_per_broker"`
	// RaftTimings are the partition Raft timings the cluster's first node
	// logged at start ("" for other targets).
	RaftTimings string `json:"raft_timings,omitempty"`
}

// scaleLevel starts a fresh instance of the named target, creates one
// topic of level partitions and measures the idle processes.
func (r *runner) scaleLevel(ctx context.Context, name string, level int) (ScalePoint, error) {
	p := r.cfg.Plan
	pt := ScalePoint{Target: name, Partitions: level}
	dir := filepath.Join(r.work, fmt.Sprintf("scale-%s-%d", name, level))
	t, err := r.start(ctx, name, dir)
	if err != nil {
		return pt, fmt.Errorf("start: %w", err)
	}
	defer t.close()
	if name == TargetCluster && len(t.nodes) > 0 {
		pt.RaftTimings = raftTimings(t.nodes[0].logPath)
	}
	if len(t.pids()) == 0 {
		return pt, fmt.Errorf("%s has no process of its own to measure", name)
	}
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, p.ScaleLimit)
	err = r.createTopic(cctx, t, r.topicName(fmt.Sprintf("scale-%d", level)), int32(level))
	cancel()
	if err != nil {
		return pt, err
	}
	took := time.Since(start)
	pt.CreateS = took.Seconds()
	// A broker is not idle yet when the creation is answered. On three
	// nodes that had created 1000 partitions in 18 s, CPU fell from 34%
	// to 23% of a core per broker over the next 20 s, while the __meta
	// log no longer moved; what the tail is was not pinned down. Settling
	// at least as long as the creation took leaves it out of the idle
	// window.
	if err := pause(ctx, max(p.ScaleSettle, took)); err != nil {
		return pt, err
	}
	pids := t.pids()
	before := make([]int64, len(pids))
	for i, pid := range pids {
		if before[i], err = procTicks(pid); err != nil {
			return pt, err
		}
	}
	t0 := time.Now()
	if err := pause(ctx, p.ScaleWindow); err != nil {
		return pt, err
	}
	window := time.Since(t0).Seconds()
	for i, pid := range pids {
		after, err := procTicks(pid)
		if err != nil {
			return pt, err
		}
		rss, err := procRSS(pid)
		if err != nil {
			return pt, err
		}
		cpu := float64(after-before[i]) / clockTicks / window * 100
		pt.PerBroker = append(pt.PerBroker, cpu)
		pt.RSSPer = append(pt.RSSPer, float64(rss)/1e6)
		pt.CPUPct += cpu / float64(len(pids))
		pt.RSSMB += float64(rss) / 1e6 / float64(len(pids))
	}
	return pt, nil
}

// pause is a measurement window: it waits d unless ctx ends first.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// raftTimingsMsg is the line a cluster node logs with its partition Raft
// timings.
const raftTimingsMsg = `msg="partition raft timings"`

// raftTimings returns the timings a node logged in logPath, as
// "key=value" pairs, or a word on why there are none.
func raftTimings(logPath string) string {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return "raft timings unknown: " + err.Error()
	}
	for line := range strings.Lines(string(b)) {
		_, rest, ok := strings.Cut(line, raftTimingsMsg)
		if !ok {
			continue
		}
		var kept []string
		for _, f := range strings.Fields(rest) {
			if k, _, _ := strings.Cut(f, "="); strings.HasSuffix(k, "_timeout") || strings.HasSuffix(k, "_interval") {
				kept = append(kept, f)
			}
		}
		return strings.Join(kept, " ")
	}
	return "raft timings unknown: the node logged none"
}
