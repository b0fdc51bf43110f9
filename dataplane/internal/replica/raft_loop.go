package replica

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

// loop is the one goroutine that watches the leadership of every group:
// it starts the barrier of each new term, re-evaluates the ISRs, queues
// metadata reports and sends this node's progress as a follower to the
// leaders, at every ISR check interval and at each leadership change.
func (rr *RaftReplicas) loop(ctx context.Context) {
	tick := time.NewTicker(rr.cfg.ISRCheckInterval)
	defer tick.Stop()
	sending := map[int32]*atomic.Bool{} // peers with a progress report in flight
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-rr.obsCh:
			if g := rr.groupByRaft(o.Raft); g != nil {
				rr.checkLeadership(g, time.Now())
			}
		case <-rr.wake:
			rr.checkAll()
		case <-tick.C:
			rr.checkAll()
			rr.sendProgress(sending)
		}
	}
}

func (rr *RaftReplicas) snapshotGroups() []*group {
	rr.mu.RLock()
	defer rr.mu.RUnlock()
	gs := make([]*group, 0, len(rr.groups))
	for _, g := range rr.groups {
		gs = append(gs, g)
	}
	return gs
}

func (rr *RaftReplicas) groupByRaft(r *raft.Raft) *group {
	rr.mu.RLock()
	defer rr.mu.RUnlock()
	for _, g := range rr.groups {
		if g.raft == r {
			return g
		}
	}
	return nil
}

func (rr *RaftReplicas) checkAll() {
	now := time.Now()
	for _, g := range rr.snapshotGroups() {
		rr.checkLeadership(g, now)
		g.cache.releaseIfIdle(now, logCacheIdle)
	}
}

// checkLeadership does the leader's periodic work for g, if it leads.
func (rr *RaftReplicas) checkLeadership(g *group, now time.Time) {
	term := g.raft.CurrentTerm()
	if g.raft.State() != raft.Leader {
		g.dropLeader()
		return
	}
	if g.fsm.broken.Load() {
		rr.reports.add(g) // the reporter hands leadership away
		return
	}
	if g.readyTerm.Load() != term {
		if g.barrierTerm.Load() != term {
			g.startBarrier(term)
		}
		return
	}
	isr, ok := g.computeISR(term, now)
	if !ok {
		return
	}
	mp := rr.metaPartition(g)
	if mp == nil {
		return
	}
	if mp.Leader != rr.cfg.NodeID || mp.LeaderEpoch != int32(term) || !sameIDs(mp.ISR, isr) || rr.draining(rr.cfg.NodeID) {
		rr.reports.add(g)
		return
	}
	if mv := g.members.Load(); mv == nil || mv.term != term || !sameIDs(mv.ids, mp.Replicas) {
		rr.reports.add(g)
	}
}

// dropLeader forgets the leader's view once g no longer leads.
func (g *group) dropLeader() {
	g.lmu.Lock()
	defer g.lmu.Unlock()
	if g.lterm != 0 {
		g.lterm, g.followers, g.isr = 0, nil, nil
		g.isrN.Store(0)
	}
}

func sameIDs(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// sendProgress sends each leader one message with the applied index of
// every partition this node follows and it leads.
func (rr *RaftReplicas) sendProgress(sending map[int32]*atomic.Bool) {
	byLeader := map[int32][]isrReport{}
	for _, g := range rr.snapshotGroups() {
		if g.raft.State() != raft.Follower || g.fsm.broken.Load() {
			continue
		}
		_, lid := g.raft.LeaderWithID()
		id, ok := nodeID(lid)
		if !ok || id == rr.cfg.NodeID {
			continue
		}
		byLeader[id] = append(byLeader[id], isrReport{
			Topic: g.k.topic, Partition: g.k.index, Term: g.raft.CurrentTerm(), Applied: g.raft.AppliedIndex(),
		})
	}
	for id, rs := range byLeader {
		busy := sending[id]
		if busy == nil {
			busy = &atomic.Bool{}
			sending[id] = busy
		}
		addr, ok := rr.addr(id)
		if !ok || !busy.CompareAndSwap(false, true) {
			continue
		}
		msg := encodeISRReports(rr.cfg.NodeID, rs)
		rr.wg.Add(1)
		go func() {
			defer rr.wg.Done()
			defer busy.Store(false)
			ctx, cancel := context.WithTimeout(rr.ctx, min(rr.cfg.ISRCheckInterval, rr.cfg.RPCTimeout))
			defer cancel()
			if _, err := rr.cfg.Mux.Call(ctx, addr, methodISR, msg); err != nil {
				rr.log.Debug("send replica progress", "to", id, "partitions", len(rs), "err", err)
			}
		}()
	}
}

// serveISR records the progress a follower node reports.
func (rr *RaftReplicas) serveISR(ctx context.Context, from string, req []byte) ([]byte, error) {
	node, rs, err := decodeISRReports(req)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for _, x := range rs {
		g := rr.group(x.Topic, x.Partition)
		if g == nil || x.Term > g.raft.CurrentTerm() {
			continue
		}
		g.noteProgress(node, x.Applied, now)
	}
	return nil, nil
}

// reportQueue collects the groups whose leader has something to tell the
// metadata; the reporter takes them all at once, so a group queued many
// times is reported once, with its newest state.
type reportQueue struct {
	mu  sync.Mutex
	set map[*group]struct{}
	sig chan struct{}
}

func (q *reportQueue) init() {
	q.set = map[*group]struct{}{}
	q.sig = make(chan struct{}, 1)
}

func (q *reportQueue) add(g *group) {
	q.mu.Lock()
	q.set[g] = struct{}{}
	q.mu.Unlock()
	select {
	case q.sig <- struct{}{}:
	default:
	}
}

func (q *reportQueue) drop(g *group) {
	q.mu.Lock()
	delete(q.set, g)
	q.mu.Unlock()
}

func (q *reportQueue) take() []*group {
	q.mu.Lock()
	defer q.mu.Unlock()
	gs := make([]*group, 0, len(q.set))
	for g := range q.set {
		gs = append(gs, g)
	}
	clear(q.set)
	return gs
}

// runReporter proposes leadership and ISR changes to the metadata and
// changes group membership, off the loop so a slow controller delays no
// leadership checks.
func (rr *RaftReplicas) runReporter(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-rr.reports.sig:
		}
		for _, g := range rr.reports.take() {
			if ctx.Err() != nil {
				return
			}
			rr.report(ctx, g)
		}
	}
}

// report brings the metadata and the group's membership in line with g,
// if g still leads and is ready.
func (rr *RaftReplicas) report(ctx context.Context, g *group) {
	term := g.raft.CurrentTerm()
	if g.raft.State() != raft.Leader {
		return
	}
	if g.fsm.broken.Load() {
		rr.handOff(g)
		return
	}
	isr, ok := g.leaderISR(term)
	mp := rr.metaPartition(g)
	if !ok || !g.ready(term) || mp == nil {
		return
	}
	self := rr.cfg.NodeID
	if mp.Leader != self || mp.LeaderEpoch != int32(term) || !sameIDs(mp.ISR, isr) {
		pctx, cancel := context.WithTimeout(ctx, rr.cfg.RPCTimeout)
		_, err := rr.cfg.Meta.Propose(pctx, &metadata.Command{PartitionState: &metadata.PartitionStateCmd{
			Topic: g.k.topic, Partition: g.k.index, Leader: self, LeaderEpoch: int32(term), ISR: isr,
		}})
		cancel()
		switch {
		case errors.Is(err, metadata.ErrStaleEpoch):
			g.log.Debug("leadership report refused as stale", "leader_epoch", term)
		case err != nil:
			g.log.Warn("report partition state", "leader_epoch", term, "err", err)
		case mp.Leader != self || mp.LeaderEpoch != int32(term):
			g.log.Info("partition leadership reported", "leader_epoch", term, "isr", isr)
		default:
			g.log.Info("partition isr changed", "leader_epoch", term, "isr", isr, "was", mp.ISR)
		}
	}
	rr.reconcileMembers(g, term, mp.Replicas)
	if rr.draining(self) {
		rr.leaveWhileDraining(g)
	}
}

// leaveWhileDraining hands g's leadership to an in-sync replica that is
// not draining, if there is one. A draining node was emptied of leaders
// to be restarted, but Raft elections do not know that: a leader lost
// elsewhere may elect it again, and it then moves the leadership on.
func (rr *RaftReplicas) leaveWhileDraining(g *group) {
	to, ok := g.bestSuccessor()
	if !ok || rr.draining(to) {
		return
	}
	g.log.Info("handing partition leadership away: this node is draining", "to", to)
	f, err := rr.startTransfer(g, to)
	if err == nil && f != nil {
		err = f.Error()
	}
	if err != nil && !errors.Is(err, raft.ErrLeadershipTransferInProgress) { // an admin transfer beat it
		g.log.Warn("hand partition leadership away from a draining node", "to", to, "err", err)
	}
}

// draining reports whether the metadata marks node id draining.
func (rr *RaftReplicas) draining(id int32) bool {
	b := rr.cfg.Meta.State().Brokers[id]
	return b != nil && b.Draining
}

// memberView is the group configuration a leader last read.
type memberView struct {
	term uint64
	ids  []int32
}

// reconcileMembers makes one step towards a group whose voters are the
// replicas in the metadata: add a missing one, else remove an extra one
// (this leader itself last, by handing leadership away first).
func (rr *RaftReplicas) reconcileMembers(g *group, term uint64, want []int32) {
	mv := g.members.Load()
	if mv == nil || mv.term != term {
		f := g.raft.GetConfiguration()
		if err := f.Error(); err != nil {
			return
		}
		var ids []int32
		for _, s := range f.Configuration().Servers {
			if id, ok := nodeID(s.ID); ok {
				ids = append(ids, id)
			}
		}
		mv = &memberView{term: term, ids: ids}
		g.members.Store(mv)
	}
	if len(want) == 0 || sameIDs(mv.ids, want) {
		return
	}
	timeout := rr.cfg.ElectionTimeout
	for _, id := range want {
		if slices.Contains(mv.ids, id) {
			continue
		}
		addr, ok := rr.addr(id)
		if !ok {
			g.log.Warn("cannot add replica without a raft address", "node", id)
			return
		}
		g.log.Info("adding replica to partition group", "node", id)
		g.members.Store(nil)
		if err := g.raft.AddVoter(serverID(id), raft.ServerAddress(addr), 0, timeout).Error(); err != nil {
			g.log.Warn("add replica to partition group", "node", id, "err", err)
		}
		return
	}
	for _, id := range mv.ids {
		if slices.Contains(want, id) {
			continue
		}
		g.members.Store(nil)
		if id == rr.cfg.NodeID {
			rr.handOff(g)
			return
		}
		g.log.Info("removing replica from partition group", "node", id)
		if err := g.raft.RemoveServer(serverID(id), 0, timeout).Error(); err != nil {
			g.log.Warn("remove replica from partition group", "node", id, "err", err)
		}
		return
	}
}

// handOff gives g's leadership to its best in-sync follower, or any.
func (rr *RaftReplicas) handOff(g *group) {
	var f raft.Future
	if to, ok := g.bestSuccessor(); ok {
		if addr, ok := rr.addr(to); ok {
			f = g.raft.LeadershipTransferToServer(serverID(to), raft.ServerAddress(addr))
		}
	}
	if f == nil {
		f = g.raft.LeadershipTransfer()
	}
	if err := f.Error(); err != nil {
		g.log.Warn("hand partition leadership away", "err", err)
	}
}
