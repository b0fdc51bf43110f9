package controller

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/chronik-stream/chronik/controlplane/config"
	"github.com/chronik-stream/chronik/controlplane/metadata"
)

// health tracks which controllers answer meta.ping. It feeds the quorum
// wait of the bootstrap, cluster_quorum_size, and leader discovery on
// broker-only nodes.
type health struct {
	c       *Controller
	mu      sync.Mutex
	answers map[int32]pingResponse // controllers other than self that answered the last round
	quorum  bool                   // a quorum answered at least once
	changed metadata.Watch
}

func newHealth(c *Controller) *health {
	return &health{c: c, answers: map[int32]pingResponse{}}
}

// alive counts the controllers that answered the last round, this node
// included when it is a controller.
func (h *health) alive() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.answers)
	if h.c.isCtl && !h.c.isStopped() {
		n++
	}
	return n
}

// snapshot returns the last answers.
func (h *health) snapshot() map[int32]pingResponse {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[int32]pingResponse, len(h.answers))
	for id, r := range h.answers {
		out[id] = r
	}
	return out
}

// run pings every other controller in rounds until ctx ends: every
// election timeout until a quorum answered once, then every broker
// heartbeat interval.
func (h *health) run(ctx context.Context) {
	fast := cmpOr(h.c.cfg.Cluster.Raft.ElectionTimeout, config.DefaultElectionTimeout)
	for {
		h.round(ctx)
		h.mu.Lock()
		every := h.c.hbInterval
		if !h.quorum {
			every = fast
		}
		h.mu.Unlock()
		t := time.NewTimer(every)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// round pings the other controllers at once and waits for every answer
// or the round's timeout.
func (h *health) round(ctx context.Context) {
	timeout := min(h.c.hbInterval, time.Second)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type answer struct {
		id   int32
		resp pingResponse
		err  error
	}
	var targets []config.Peer
	for _, p := range h.c.controllers {
		if p.ID != h.c.cfg.NodeID {
			targets = append(targets, p)
		}
	}
	answers := make(chan answer, len(targets))
	var wg sync.WaitGroup
	for _, p := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := h.c.ping(ctx, p.RaftAddr())
			answers <- answer{p.ID, resp, err}
		}()
	}
	wg.Wait()
	close(answers)
	got := map[int32]pingResponse{}
	for a := range answers {
		if a.err == nil {
			got[a.id] = a.resp
			h.c.noteLeader(a.resp.leaderRef)
		}
	}
	h.mu.Lock()
	h.answers = got
	n := len(got)
	if h.c.isCtl {
		n++
	}
	if n >= h.c.quorum {
		h.quorum = true
	}
	h.mu.Unlock()
	h.changed.Notify()
}

// ping asks the node at addr for its view of __meta.
func (c *Controller) ping(ctx context.Context, addr string) (pingResponse, error) {
	var resp pingResponse
	b, err := c.call(ctx, addr, methodPing, encode(pingRequest{From: c.cfg.NodeID}))
	if err != nil {
		return resp, err
	}
	return resp, decode("ping response", b, &resp)
}

// runBootstrap waits for a quorum of controllers and bootstraps __meta
// with the controllers of cluster.toml, the same configuration on every
// node, so that any majority of them can elect the first leader. A
// replica with existing state does not bootstrap again. Nor does a fresh
// one whose peers run a group formed with other members (a node added to
// the cluster later): its first log entry would contradict theirs, so it
// waits for the leader to add it.
func (c *Controller) runBootstrap(ctx context.Context) error {
	total := len(c.controllers)
	c.log.Info(fmt.Sprintf("Starting cluster bootstrap for node %d (cluster size: %d)", c.cfg.NodeID, total))
	c.log.Info(fmt.Sprintf("Waiting for quorum (need %d/%d nodes)...", c.quorum, total))
	for {
		ch := c.health.changed.Changed()
		if n := c.health.alive(); n >= c.quorum {
			c.log.Info(fmt.Sprintf("Quorum achieved! %d/%d peers alive", n, total))
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		}
	}
	existing, err := c.stores.hasState()
	if err != nil {
		return err
	}
	conf := c.bootstrapConfiguration()
	switch foreign := c.peersFormedOtherwise(clusterID(conf)); {
	case existing:
		c.log.Info("Found existing metadata log; rejoining without bootstrap")
	case len(foreign) > 0:
		c.log.Info("Peers run a metadata partition formed with other members; joining without bootstrap", "peers", formatIDs(foreign))
	default:
		if err := c.raft.Load().BootstrapCluster(conf).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("bootstrap __meta: %w", err)
		}
	}
	c.log.Info(fmt.Sprintf("Bootstrap complete for node %d", c.cfg.NodeID))
	return nil
}

// peersFormedOtherwise lists controllers whose group was bootstrapped with
// a configuration other than the one this node would write.
func (c *Controller) peersFormedOtherwise(mine string) []int32 {
	var ids []int32
	for id, r := range c.health.snapshot() {
		if r.ClusterID != "" && r.ClusterID != mine {
			ids = append(ids, id)
		}
	}
	return ids
}

// bootstrapConfiguration is the voter set of cluster.toml: server id the
// decimal node id, address the peer's raft address.
func (c *Controller) bootstrapConfiguration() raft.Configuration {
	var conf raft.Configuration
	for _, p := range c.controllers {
		conf.Servers = append(conf.Servers, raft.Server{
			Suffrage: raft.Voter,
			ID:       raft.ServerID(strconv.Itoa(int(p.ID))),
			Address:  raft.ServerAddress(p.RaftAddr()),
		})
	}
	return conf
}

// readyLoop closes Ready once a leader exists and this replica caught up
// with it: the leader after its term's barrier, a follower once it applied
// the index the ready leader reports.
func (c *Controller) readyLoop(ctx context.Context) {
	for !c.isReady() {
		ch := c.events.Changed()
		ref := c.leader()
		switch {
		case ref.LeaderID == 0:
		case ref.LeaderID == c.cfg.NodeID:
			if c.leaderOK.Load() {
				c.markReady("leader")
				return
			}
		default:
			if c.catchUp(ctx, ref) {
				c.markReady("follower")
				return
			}
		}
		if c.waitEvent(ctx, ch, 100*time.Millisecond) != nil {
			return
		}
	}
}

// catchUp asks the leader how far its image is and waits to get there.
func (c *Controller) catchUp(ctx context.Context, ref leaderRef) bool {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := c.ping(pctx, ref.LeaderAddr)
	if err != nil || !resp.Ready || resp.LeaderID != ref.LeaderID {
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.view.waitIndex(wctx, resp.Applied) == nil
}

// observeLeader turns raft's leader observations into events.
func (c *Controller) observeLeader(ctx context.Context) {
	r := c.raft.Load()
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(obs)
	defer r.DeregisterObserver(obs)
	for {
		select {
		case o := <-ch:
			lo := o.Data.(raft.LeaderObservation)
			c.log.Info("__meta leader changed", "leader_id", string(lo.LeaderID), "leader_addr", string(lo.LeaderAddr), "term", r.CurrentTerm())
			c.events.Notify()
		case <-ctx.Done():
			return
		}
	}
}
