package replica

// Fast failover with cheap idle groups.
//
// Partition groups run long heartbeat timeouts (2 s by default) so that a
// broker with a thousand replicas idles cheaply (DESIGN.md, "Many
// partitions per broker"). On its own that would make failover slow: a
// follower notices a dead leader only once the timeout has passed, then
// waits a random part of it again. Instead, each node probes every peer
// once per FailureProbeInterval over the raft port: one small RPC per peer
// pair, however many groups they share. A peer that misses
// FailureProbeMisses probes in a row is suspected, and every group here
// that follows it has its heartbeat and election timeouts lowered to
// FastTimeout with raft.ReloadConfig, which resets a follower's timer at
// once. The surviving followers then campaign within FastTimeout or two.
// A group gets its normal timeouts back once it has a leader other than
// the suspect, or the suspect answers again.
//
// A suspicion is only a shorter timeout: a follower still campaigns only
// when it has not heard from its leader for FastTimeout, so a peer that is
// slow to answer probes but still heartbeats keeps its leaderships.

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

const methodPing = "replica.ping"

// detector is the per-node failure detector: it runs in Run's goroutine
// tree and owns the fast-timeout state of every group.
type detector struct {
	rr     *RaftReplicas
	misses map[int32]int // consecutive missed probes per peer

	mu       sync.Mutex
	suspects map[int32]bool
	fast     map[*group]int32 // groups running fast timeouts -> the suspect they followed, or noLeader
}

// noLeader marks a group in detector.fast that runs fast timeouts until it
// has its first leader.
const noLeader = -1

func newDetector(rr *RaftReplicas) *detector {
	return &detector{rr: rr, misses: map[int32]int{}, suspects: map[int32]bool{}, fast: map[*group]int32{}}
}

func (rr *RaftReplicas) servePing(context.Context, string, []byte) ([]byte, error) { return nil, nil }

// enabled reports whether run probes peers and sweeps timeouts.
func (d *detector) enabled() bool {
	return d.rr.cfg.Cluster != nil && d.rr.cfg.FailureProbeInterval >= 0
}

// run probes the peers until ctx ends.
func (d *detector) run(ctx context.Context) {
	cfg := &d.rr.cfg
	if !d.enabled() {
		return
	}
	tick := time.NewTicker(cfg.FailureProbeInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		d.probeAll(ctx)
		d.sweep()
	}
}

// probeAll pings every other peer at once and notes who answered.
func (d *detector) probeAll(ctx context.Context) {
	cfg := &d.rr.cfg
	type result struct {
		id int32
		ok bool
	}
	peers := d.peers()
	results := make(chan result, len(peers))
	for _, id := range peers {
		go func() {
			addr, ok := d.rr.addr(id)
			if ok {
				pctx, cancel := context.WithTimeout(ctx, cfg.FailureProbeTimeout)
				_, err := cfg.Mux.Call(pctx, addr, methodPing, nil)
				cancel()
				ok = err == nil
			}
			results <- result{id, ok}
		}()
	}
	for range peers {
		r := <-results
		if r.ok {
			d.misses[r.id] = 0
			d.setSuspect(r.id, false)
			continue
		}
		d.misses[r.id]++
		if d.misses[r.id] >= cfg.FailureProbeMisses {
			d.setSuspect(r.id, true)
		}
	}
}

func (d *detector) setSuspect(id int32, suspect bool) {
	d.mu.Lock()
	was := d.suspects[id]
	if suspect {
		d.suspects[id] = true
	} else {
		delete(d.suspects, id)
	}
	d.mu.Unlock()
	if suspect && !was {
		d.rr.log.Info("peer stopped answering; groups it leads fail over fast", "peer", id)
	}
}

// sweep gives fast timeouts to the groups that follow a suspect and
// normal ones back to those that no longer need them.
func (d *detector) sweep() {
	d.mu.Lock()
	defer d.mu.Unlock()
	// With every peer suspected the likelier story is that this node is
	// overloaded or cut off; fast elections could not win a vote then.
	cutOff := len(d.suspects) > 0 && len(d.suspects) >= len(d.peers())
	for g, from := range d.fast {
		_, lid := g.raft.LeaderWithID()
		leader, _ := nodeID(lid)
		done := !d.suspects[from] || (leader != 0 && leader != from)
		if from == noLeader {
			done = leader != 0
		}
		if done || cutOff || g.raft.State() == raft.Shutdown {
			d.setTimeouts(g, d.rr.cfg.HeartbeatTimeout, d.rr.cfg.ElectionTimeout)
			delete(d.fast, g)
		}
	}
	if len(d.suspects) == 0 || cutOff {
		return
	}
	for _, g := range d.rr.snapshotGroups() {
		if _, ok := d.fast[g]; ok || g.raft.State() != raft.Follower {
			continue
		}
		_, lid := g.raft.LeaderWithID()
		if leader, ok := nodeID(lid); ok && d.suspects[leader] {
			d.setTimeouts(g, d.rr.cfg.FastTimeout, d.rr.cfg.FastTimeout)
			d.fast[g] = leader
		}
	}
}

// peers are the ids of the other peers in cluster.toml.
func (d *detector) peers() []int32 {
	var ids []int32
	for _, p := range d.rr.cfg.Cluster.Peers {
		if p.ID != d.rr.cfg.NodeID {
			ids = append(ids, p.ID)
		}
	}
	return ids
}

func (d *detector) setTimeouts(g *group, heartbeat, election time.Duration) {
	rc := g.raft.ReloadableConfig()
	rc.HeartbeatTimeout, rc.ElectionTimeout = heartbeat, election
	if err := g.raft.ReloadConfig(rc); err != nil {
		g.log.Warn("change raft timeouts", "heartbeat_timeout", heartbeat, "err", err)
	}
}

// untilLeader notes that g was started with fast timeouts, to be set back
// to normal once it has a leader.
func (d *detector) untilLeader(g *group) {
	d.mu.Lock()
	d.fast[g] = noLeader
	d.mu.Unlock()
}

// forget drops a detached group.
func (d *detector) forget(g *group) {
	d.mu.Lock()
	delete(d.fast, g)
	d.mu.Unlock()
}
