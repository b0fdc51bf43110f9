package controller

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Help texts of the Raft metrics. Partition groups export the same names
// with their own topic and partition labels; a Prometheus registry demands
// one help text per name, so they should use these.
const (
	HelpRaftLeader       = "Node id of the Raft group's leader (0 when unknown)."
	HelpRaftIsLeader     = "Raft leader status (1 = leader, 0 = follower)."
	HelpRaftTerm         = "Raft term (increases with elections)."
	HelpRaftCommitIndex  = "Raft commit index (log position)."
	HelpRaftAppliedIndex = "Raft applied index (state machine position)."
	HelpRaftLastIndex    = "Raft last log index (the newest entry stored here, committed or not)."
)

// registerMetrics registers the __meta gauges and returns a function that
// unregisters them. The gauges read live Raft state at scrape time.
func (c *Controller) registerMetrics() (unregister func()) {
	reg := c.cfg.Registerer
	if reg == nil {
		return func() {}
	}
	labels := prometheus.Labels{"topic": Group, "partition": "0"}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, f)
	}
	cs := []prometheus.Collector{
		gauge("raft_leader", HelpRaftLeader, func() float64 { return float64(c.LeaderID()) }),
		gauge("raft_is_leader", HelpRaftIsLeader, func() float64 {
			if c.IsLeader() {
				return 1
			}
			return 0
		}),
		gauge("raft_term", HelpRaftTerm, func() float64 { t, _, _ := c.Stats(); return float64(t) }),
		gauge("raft_commit_index", HelpRaftCommitIndex, func() float64 { _, ci, _ := c.Stats(); return float64(ci) }),
		gauge("raft_applied_index", HelpRaftAppliedIndex, func() float64 { _, _, a := c.Stats(); return float64(a) }),
		gauge("raft_last_log_index", HelpRaftLastIndex, func() float64 {
			if r := c.raft.Load(); r != nil {
				return float64(r.LastIndex())
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cluster_quorum_size",
			Help: "Controllers currently answering health checks, this node included; a majority of the controllers means __meta has quorum.",
		}, func() float64 { return float64(c.health.alive()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cluster_size",
			Help: "Nodes in the cluster: the peers of cluster.toml and any other registered broker.",
		}, func() float64 { return float64(c.clusterSize()) }),
	}
	var done []prometheus.Collector
	for _, col := range cs {
		if err := reg.Register(col); err != nil {
			c.log.Warn("register metric", "error", err)
			continue
		}
		done = append(done, col)
	}
	return func() {
		for _, col := range done {
			reg.Unregister(col)
		}
	}
}

// clusterSize counts the peers of cluster.toml plus registered brokers
// that are not among them.
func (c *Controller) clusterSize() int {
	n := len(c.cfg.Cluster.Peers)
	for id := range c.view.load().Brokers {
		if _, ok := c.cfg.Cluster.Peer(id); !ok {
			n++
		}
	}
	return n
}
