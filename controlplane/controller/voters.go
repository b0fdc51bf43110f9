package controller

// Membership changes of __meta asked for by an operator: a controller
// added at run time (AddVoter), a decommissioned node removed (RetireNode).
//
// A decommissioned node must not come back by itself: while it still runs
// with a cluster.toml that lists it, a leader would add it as a voter
// again (reconcileVoters) and its broker loop would register it again. So
// a node that sees its own broker record vanish from the image (only a
// decommission removes one), or that the leader tells so (meta.retire,
// sent to every voter it removes, since a controller-only node has no
// record), retires: it stops registering and heartbeating, and answers
// health checks as retired, which reconcileVoters skips on any leader. It
// stays retired until it is restarted; started again with a cluster.toml
// that lists it, it joins as a new node would.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

// ErrNotLeader means a membership change was asked of a node that does
// not lead __meta.
var ErrNotLeader = errors.New("controller: not the __meta leader")

// retireWait bounds how long RetireNode waits for a retiring voter to
// apply its own removal from the image before it removes its vote.
const retireWait = 5 * time.Second

// Voters returns the ids of the __meta voters in the latest configuration
// this node knows, sorted. A broker-only node answers with the controllers
// of cluster.toml.
func (c *Controller) Voters() ([]int32, error) {
	r := c.raft.Load()
	if r == nil {
		return peerIDs(c.controllers), nil
	}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read __meta configuration: %w", err)
	}
	var ids []int32
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		if n, err := strconv.ParseInt(string(s.ID), 10, 32); err == nil {
			ids = append(ids, int32(n))
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// AddVoter adds node id, reachable at raftAddr, to the __meta voters. It
// runs on the leader only (ErrNotLeader elsewhere) and returns once the
// configuration change is committed; a voter already present is left
// alone.
func (c *Controller) AddVoter(ctx context.Context, id int32, raftAddr string) error {
	r, err := c.leaderRaft()
	if err != nil {
		return fmt.Errorf("add node %d to __meta: %w", id, err)
	}
	if voters, err := c.Voters(); err == nil && slices.Contains(voters, id) {
		return nil
	}
	c.setRemoved(id, false)
	c.log.Info("adding controller to __meta", "peer_id", id, "raft_addr", raftAddr)
	f := r.AddVoter(raft.ServerID(strconv.Itoa(int(id))), raft.ServerAddress(raftAddr), 0, timeoutOf(ctx))
	if err := c.awaitFuture(ctx, f); err != nil {
		return fmt.Errorf("add node %d to __meta: %w", id, err)
	}
	return nil
}

// RetireNode removes a decommissioned node from __meta: its broker record
// (so it stops being listed and, seeing that, stops registering) and then,
// when it is a voter, its vote. It runs on the leader only, and refuses to
// remove the leader itself (move the leadership first) or the last voter.
func (c *Controller) RetireNode(ctx context.Context, id int32) error {
	r, err := c.leaderRaft()
	if err != nil {
		return fmt.Errorf("retire node %d: %w", id, err)
	}
	voters, err := c.Voters()
	if err != nil {
		return fmt.Errorf("retire node %d: %w", id, err)
	}
	isVoter := slices.Contains(voters, id)
	switch {
	case id == c.cfg.NodeID:
		return fmt.Errorf("retire node %d: it leads __meta; move the leadership first", id)
	case isVoter && len(voters) == 1:
		return fmt.Errorf("retire node %d: it is the last __meta voter", id)
	}
	if b := c.view.load().Brokers[id]; b != nil {
		addr := b.RaftAddr
		if p, ok := c.cfg.Cluster.Peer(id); ok {
			addr = p.RaftAddr()
		}
		if _, err := c.propose(ctx, &metadata.Command{RemoveBroker: &id}); err != nil && !errors.Is(err, metadata.ErrUnknownBroker) {
			return fmt.Errorf("retire node %d: remove its broker record: %w", id, err)
		}
		if isVoter && addr != "" {
			c.awaitApplied(ctx, id, addr, c.view.load().Index)
		}
	}
	if !isVoter {
		return nil
	}
	c.setRemoved(id, true)
	c.tellRetired(ctx, id)
	c.log.Info("removing controller from __meta", "peer_id", id)
	f := r.RemoveServer(raft.ServerID(strconv.Itoa(int(id))), 0, timeoutOf(ctx))
	if err := c.awaitFuture(ctx, f); err != nil {
		return fmt.Errorf("retire node %d: remove it from the __meta voters: %w", id, err)
	}
	return nil
}

// awaitApplied waits, at most retireWait, until voter id reports that it
// has applied index, so that it sees its removal before it leaves the
// group. A voter that is down is waited for at most retireWait.
func (c *Controller) awaitApplied(ctx context.Context, id int32, addr string, index uint64) {
	ctx, cancel := context.WithTimeout(ctx, retireWait)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		resp, err := c.ping(pctx, addr)
		pcancel()
		switch {
		case err == nil && resp.Applied >= index:
			return
		case err != nil && ctx.Err() == nil:
			c.log.Debug("retiring node does not answer", "peer_id", id, "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// tellRetired tells voter id, at most retireWait, that it is being
// removed. A node with a broker record also learns it from the image, but
// a controller-only node has none: told nothing, it would keep answering
// health checks as a live controller, and a later leader, which does not
// know it removed the node on purpose, would add it back. A node that is
// down is not waited for; started again, it joins as a new node would.
func (c *Controller) tellRetired(ctx context.Context, id int32) {
	p, ok := c.cfg.Cluster.Peer(id)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, retireWait)
	defer cancel()
	if _, err := c.call(ctx, p.RaftAddr(), methodRetire, encode(retireRequest{From: c.cfg.NodeID, NodeID: id})); err != nil {
		c.log.Warn("could not tell the node it is retired", "peer_id", id, "error", err)
	}
}

// setRemoved records on this node, the leader, that voter id was removed
// on purpose, so that reconcileVoters does not add it back before the node
// itself answers as retired (or after AddVoter, that it may).
func (c *Controller) setRemoved(id int32, removed bool) {
	c.vmu.Lock()
	defer c.vmu.Unlock()
	if c.removed == nil {
		c.removed = map[int32]bool{}
	}
	if removed {
		c.removed[id] = true
	} else {
		delete(c.removed, id)
	}
}

// wasRemoved reports whether this node removed voter id on purpose.
func (c *Controller) wasRemoved(id int32) bool {
	c.vmu.Lock()
	defer c.vmu.Unlock()
	return c.removed[id]
}

// leaderRaft returns the __meta replica when this node leads it.
func (c *Controller) leaderRaft() (*raft.Raft, error) {
	r := c.raft.Load()
	switch {
	case c.isStopped():
		return nil, ErrStopped
	case r == nil:
		return nil, ErrNotController
	case r.State() != raft.Leader:
		return nil, ErrNotLeader
	}
	return r, nil
}

// awaitFuture waits for f, or for ctx to end.
func (c *Controller) awaitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	if !c.goFunc(func() { done <- f.Error() }) {
		return ErrStopped
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// timeoutOf is what is left of ctx's deadline, or 0 (no timeout).
func timeoutOf(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return 0
}

// Retired reports whether this node has seen itself removed from the
// cluster (decommissioned) since it started.
func (c *Controller) Retired() bool { return c.retired.Load() }

// noteRetirement checks the image for this node's own removal: only a
// decommission removes a broker record, so a node whose record it has seen
// is gone is retired. It returns whether the node is retired.
func (c *Controller) noteRetirement(st *metadata.State) bool {
	if c.retired.Load() {
		return true
	}
	switch {
	case st.Brokers[c.cfg.NodeID] != nil:
		c.registeredSeen.Store(true)
	case c.registeredSeen.Load():
		c.retire()
		return true
	}
	return false
}

// retire marks this node retired, once.
func (c *Controller) retire() {
	if c.retired.CompareAndSwap(false, true) {
		c.log.Warn("this node was decommissioned and removed from the cluster; it no longer registers. Stop it, and remove it from cluster.toml on every node")
	}
}

// Answering lists the controllers of cluster.toml that answered this
// node's last round of health checks (the same count as
// cluster_quorum_size), this node included when it is a running
// controller, sorted. Retired nodes are left out.
func (c *Controller) Answering() []int32 {
	var ids []int32
	for id, a := range c.health.snapshot() {
		if !a.Retired {
			ids = append(ids, id)
		}
	}
	if c.isCtl && !c.isStopped() {
		ids = append(ids, c.cfg.NodeID)
	}
	slices.Sort(ids)
	return ids
}
