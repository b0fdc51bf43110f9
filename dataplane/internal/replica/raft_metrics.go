package replica

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chronik-stream/chronik/controlplane/controller"
)

// raftCollector exports the per-partition Raft and ISR gauges by walking
// the live groups at scrape time: nothing per partition runs in between.
// The Raft metrics share their names and help texts with the __meta ones
// of the controller, which carry topic="__meta".
type raftCollector struct {
	rr                                                     *RaftReplicas
	leader, isLeader, term, commit, applied, last, isr, ok *prometheus.Desc
}

func newRaftCollector(rr *RaftReplicas) *raftCollector {
	labels := []string{"topic", "partition"}
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, labels, nil) }
	return &raftCollector{
		rr:       rr,
		leader:   d("raft_leader", controller.HelpRaftLeader),
		isLeader: d("raft_is_leader", controller.HelpRaftIsLeader),
		term:     d("raft_term", controller.HelpRaftTerm),
		commit:   d("raft_commit_index", controller.HelpRaftCommitIndex),
		applied:  d("raft_applied_index", controller.HelpRaftAppliedIndex),
		last:     d("raft_last_log_index", controller.HelpRaftLastIndex),
		isr:      d("partition_isr_size", "In-sync replicas of the partition (the leader's view; the metadata's on followers)."),
		ok:       d("partition_has_min_isr", "1 when the partition has at least min.insync.replicas in-sync replicas, else 0."),
	}
}

// Describe implements prometheus.Collector. It describes nothing, which
// makes the collector unchecked: the controller exports the same names for
// __meta with constant labels, and a registry refuses a second descriptor
// of a name whose labels are variable where the first one's are constant.
// The gatherer still merges both into one family per name.
func (c *raftCollector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c *raftCollector) Collect(ch chan<- prometheus.Metric) {
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, s := range c.rr.Status() {
		lv := []string{s.Topic, strconv.Itoa(int(s.Partition))}
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
		}
		g(c.leader, float64(s.Leader))
		g(c.isLeader, b2f(s.IsLeader))
		g(c.term, float64(s.Term))
		g(c.commit, float64(s.CommitIndex))
		g(c.applied, float64(s.AppliedIndex))
		g(c.last, float64(s.LastIndex))
		g(c.isr, float64(len(s.ISR)))
		g(c.ok, b2f(int32(len(s.ISR)) >= s.MinInsyncReplicas))
	}
}

// registerMetrics registers the collector and returns its unregister.
func (rr *RaftReplicas) registerMetrics() func() {
	reg := rr.cfg.Registerer
	if reg == nil {
		return func() {}
	}
	c := newRaftCollector(rr)
	if err := reg.Register(c); err != nil {
		rr.log.Warn("register partition raft metrics", "err", err)
		return func() {}
	}
	return func() { reg.Unregister(c) }
}
