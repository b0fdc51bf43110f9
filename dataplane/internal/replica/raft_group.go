package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/chronik-stream/chronik/controlplane/metadata"
	"github.com/chronik-stream/chronik/controlplane/raftnet"
	"github.com/chronik-stream/chronik/dataplane/internal/partition"
)

// group is one partition replica's Raft group.
type group struct {
	rr      *RaftReplicas
	k       key
	name    string // "<topic>/<partition>", the Raft group on the Mux
	p       *partition.Partition
	log     *slog.Logger
	fsm     *fsm
	raft    *raft.Raft
	trans   *raftnet.GroupTransport
	r       atomic.Pointer[raft.Raft] // raft, for the state machine's goroutine
	wal     *raftwal.WAL
	cache   *logCache // in front of wal
	walMeta *metadb.BoltMetaDB

	ctx    context.Context // ends at detach; bounds catch-up reads
	cancel context.CancelFunc

	mu       sync.Mutex // guards closed and wg.Add
	closed   bool
	wg       sync.WaitGroup // proposal waiters and the term barrier
	raftDown chan struct{}  // closed once Raft has shut down

	readyTerm   atomic.Uint64 // term whose barrier completed while leading
	barrierTerm atomic.Uint64 // term a barrier was started for; 0 after one failed

	lmu       sync.Mutex // guards the leader's view below
	lterm     uint64     // term the view belongs to; 0: none
	followers map[int32]progress
	isr       []int32
	isrN      atomic.Int32 // len(isr) for the current lterm, for Produce

	members atomic.Pointer[memberView] // the reporter's cache of the configuration
	stores  followerStores             // the leader's view of what followers stored
}

// progress is what the leader knows of a follower.
type progress struct {
	applied uint64
	at      time.Time
}

// attach starts p's group: it is Manager's Config.Attach.
func (rr *RaftReplicas) attach(p *partition.Partition, t *metadata.Topic) (func(), error) {
	k := key{p.Topic, p.Index}
	if int(p.Index) >= len(t.Partitions) {
		return nil, fmt.Errorf("start raft group %s/%d: %w", p.Topic, p.Index, metadata.ErrUnknownPartition)
	}
	mp := t.Partitions[p.Index]
	dir := rr.m.partitionConfig(k, t.Configs).Storage.Dir
	g := &group{
		rr:       rr,
		k:        k,
		name:     p.Topic + "/" + fmt.Sprint(p.Index),
		p:        p,
		raftDown: make(chan struct{}),
	}
	g.log = rr.log.With("raft_group", g.name)
	g.ctx, g.cancel = context.WithCancel(rr.ctx)
	g.fsm = &fsm{g: g, p: p}
	if err := g.start(dir, mp); err != nil {
		g.cancel()
		return nil, fmt.Errorf("start raft group %s: %w", g.name, err)
	}
	rr.mu.Lock()
	rr.groups[k] = g
	rr.mu.Unlock()
	return func() { rr.detach(g) }, nil
}

// start opens the group's stores and starts Raft, bootstrapping a new
// partition's group.
func (g *group) start(dir string, mp metadata.Partition) error {
	cfg := &g.rr.cfg
	hcl := newHCLogger(g.log)
	rdir := filepath.Join(dir, "raft")
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", rdir, err)
	}
	// raft-wal v0.4 does not close its metadata DB: own it, so closing a
	// group releases the file and its lock.
	meta := &metadb.BoltMetaDB{}
	wal, err := openWAL(rdir, cfg.WALSegmentSize, hcl, meta)
	if err != nil {
		return errors.Join(fmt.Errorf("open raft log: %w", err), meta.Close())
	}
	fail := func(err error) error { return errors.Join(err, wal.Close(), meta.Close()) }
	logs := newLogCache(chunkedLogStore{wal}, cfg.LogCacheSize)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hcl)
	if err != nil {
		return fail(fmt.Errorf("open snapshot store: %w", err))
	}
	existing, err := raft.HasExistingState(logs, wal, snaps)
	if err != nil {
		return fail(fmt.Errorf("read raft state: %w", err))
	}
	if err := g.resetWithoutSnapshot(snaps, existing); err != nil {
		return fail(err)
	}
	g.trans = cfg.Mux.Transport(g.name)
	rc := g.raftConfig()
	// A new partition's first replica campaigns on the fast timeout while
	// the others keep the normal one, so the group elects within about
	// FastTimeout, and elects the leader the metadata names until then.
	first := !existing && mp.LeaderEpoch == 0 && g.rr.det.enabled() && len(mp.Replicas) > 0 && serverID(mp.Replicas[0]) == g.rr.id
	if first {
		rc.HeartbeatTimeout, rc.ElectionTimeout = cfg.FastTimeout, cfg.FastTimeout
	}
	r, err := raft.NewRaft(rc, g.fsm, logs, wal, snaps, g.trans)
	if err != nil {
		return fail(fmt.Errorf("start raft: %w", err))
	}
	g.raft, g.wal, g.walMeta, g.cache = r, wal, meta, logs
	g.r.Store(r)
	g.trans.OnStored(g.followerStored)
	if first {
		g.rr.det.untilLeader(g)
	}
	r.RegisterObserver(g.rr.observer)
	// Only the replicas of a partition that never had a Raft leader
	// bootstrap it; a replica added later is added by the leader.
	if !existing && mp.LeaderEpoch == 0 {
		var servers []raft.Server
		for _, id := range mp.Replicas {
			addr, ok := g.rr.addr(id)
			if !ok {
				g.stopRaft()
				return fmt.Errorf("bootstrap: no raft address for node %d", id)
			}
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: serverID(id), Address: raft.ServerAddress(addr)})
		}
		err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
		if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			g.stopRaft()
			return fmt.Errorf("bootstrap: %w", err)
		}
		g.log.Debug("bootstrapped partition group", "replicas", mp.Replicas)
	}
	return nil
}

// resetWithoutSnapshot empties the partition log when there is no snapshot
// to restore: Raft will re-apply its whole log from index 1.
func (g *group) resetWithoutSnapshot(snaps raft.SnapshotStore, existing bool) error {
	list, err := snaps.List()
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	if len(list) > 0 || g.p.LogEndOffset() == 0 {
		return nil
	}
	if !existing {
		g.log.Warn("discarding partition data that no raft log covers", "log_end_offset", g.p.LogEndOffset())
	}
	return g.p.ResetTo(0)
}

func (g *group) raftConfig() *raft.Config {
	cfg := &g.rr.cfg
	c := raft.DefaultConfig()
	c.LocalID = g.rr.id
	c.HeartbeatTimeout = cfg.HeartbeatTimeout
	c.ElectionTimeout = cfg.ElectionTimeout
	c.CommitTimeout = cfg.CommitTimeout
	c.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	c.SnapshotThreshold = cfg.SnapshotThreshold
	c.SnapshotInterval = cfg.SnapshotInterval
	c.TrailingLogs = cfg.TrailingLogs
	c.BatchApplyCh = true
	c.NoLegacyTelemetry = true
	c.Logger = newHCLogger(g.log)
	return c
}

// detach stops g: no new proposals, Raft shut down (which fails pending
// ones), and every goroutine of g waited for. Safe to call twice.
func (rr *RaftReplicas) detach(g *group) {
	rr.mu.Lock()
	if rr.groups[g.k] == g {
		delete(rr.groups, g.k)
	}
	rr.mu.Unlock()
	rr.det.forget(g)
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.closed = true
	g.mu.Unlock()
	g.cancel()
	g.stopRaft()
	g.wg.Wait()
	rr.reports.drop(g)
}

func (g *group) stopRaft() {
	g.raft.DeregisterObserver(g.rr.observer)
	// Closing the transport first ends requests that wait for a peer
	// (raftnet holds them up to its RPC timeout while the peer is down),
	// which Raft's Shutdown would otherwise wait out.
	g.trans.Close()
	if err := g.raft.Shutdown().Error(); err != nil {
		g.log.Warn("shut down raft group", "err", err)
	}
	close(g.raftDown)
	if err := errors.Join(g.wal.Close(), g.walMeta.Close()); err != nil {
		g.log.Warn("close raft log", "err", err)
	}
}

// ready reports whether g leads in term and has applied all earlier terms.
func (g *group) ready(term uint64) bool {
	return g.raft.State() == raft.Leader && g.readyTerm.Load() == term && !g.fsm.broken.Load()
}

// electionWait bounds how long a write waits for a group that has no
// leader yet (a new partition's first election) before it is refused.
const electionWait = 3 * time.Second

// settle waits while g knows no leader, or leads but has not applied
// earlier terms yet, until g is ready or another node leads, ctx ends or
// electionWait passed. It spares the clients of a new partition a
// NOT_LEADER answer, after which most refresh their metadata only after
// seconds. A group that knows another leader returns at once.
func (g *group) settle(ctx context.Context) {
	unsettled := func() bool {
		_, id := g.raft.LeaderWithID()
		switch g.raft.State() {
		case raft.Shutdown:
			return false
		case raft.Leader:
			return !g.ready(g.raft.CurrentTerm()) && !g.fsm.broken.Load()
		default:
			return id == ""
		}
	}
	if !unsettled() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, electionWait)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for unsettled() {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// proposal is an entry handed to Raft; done closes when it was applied or
// failed.
type proposal struct {
	f    raft.ApplyFuture
	done chan struct{}
	err  error
}

// propose hands cmd to Raft now, in the caller's order, and starts the
// goroutine that waits for its outcome.
func (g *group) propose(cmd []byte) (*proposal, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, errNotLeader
	}
	pr := &proposal{f: g.raft.Apply(cmd, g.rr.cfg.ApplyTimeout), done: make(chan struct{})}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		pr.err = awaitFuture(pr.f, g.raftDown)
		close(pr.done)
	}()
	return pr, nil
}

// droppedFutureGrace is how long awaitFuture still waits for a future
// once Raft is down: every future Raft answers at all is answered before
// its Shutdown returns, so this only covers handing the answer over.
const droppedFutureGrace = time.Second

// awaitFuture returns f's outcome, or raft.ErrRaftShutdown when Raft shut
// down without answering it. An Apply or Barrier future is queued in
// Raft's buffered apply channel (BatchApplyCh) until the leader loop takes
// it, and a Shutdown in between drops it unanswered: waiting on it alone
// held detach, and so a SIGTERM, until the process was killed. The
// goroutine left waiting on a dropped future holds only f.
func awaitFuture(f raft.Future, down <-chan struct{}) error {
	res := make(chan error, 1)
	go func() { res <- f.Error() }() // not joined when f was dropped; see above
	select {
	case err := <-res:
		return err
	case <-down:
	}
	t := time.NewTimer(droppedFutureGrace)
	defer t.Stop()
	select {
	case err := <-res:
		return err
	case <-t.C:
		return raft.ErrRaftShutdown
	}
}

// wait returns the state machine's response, or an error when the entry
// was not applied here (mapped to NOT_LEADER_OR_FOLLOWER: the client
// retries on the new leader) or ctx ended first.
func (pr *proposal) wait(ctx context.Context) (any, error) {
	select {
	case <-pr.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if pr.err != nil {
		return nil, fmt.Errorf("%w: %w", kerr.NotLeaderForPartition, pr.err)
	}
	return pr.f.Response(), nil
}

// startBarrier makes g ready to serve as leader of term once everything
// before it is applied; called by the loop when it sees g lead in term.
func (g *group) startBarrier(term uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.barrierTerm.Store(term)
	f := g.raft.Barrier(g.rr.cfg.ElectionTimeout)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := awaitFuture(f, g.raftDown); err != nil {
			g.log.Debug("leader barrier failed", "term", term, "err", err)
			g.barrierTerm.CompareAndSwap(term, 0) // the loop retries
			return
		}
		if g.raft.CurrentTerm() != term {
			return
		}
		g.becomeLeader(term)
		g.readyTerm.Store(term)
		g.log.Info("partition leader ready", "leader_epoch", term)
		select {
		case g.rr.wake <- struct{}{}:
		default:
		}
	}()
}

// becomeLeader starts the leader's view of term from the ISR in the
// metadata: those replicas count as in sync until they fail to report.
func (g *group) becomeLeader(term uint64) {
	self := g.rr.cfg.NodeID
	now := time.Now()
	applied := g.raft.AppliedIndex()
	g.lmu.Lock()
	defer g.lmu.Unlock()
	g.lterm = term
	g.followers = map[int32]progress{}
	if mp := g.rr.metaPartition(g); mp != nil {
		for _, id := range mp.ISR {
			if id != self && slices.Contains(mp.Replicas, id) {
				g.followers[id] = progress{applied: applied, at: now}
			}
		}
	}
	g.computeISRLocked(now)
}

// noteProgress records a follower's report.
func (g *group) noteProgress(from int32, applied uint64, at time.Time) {
	g.lmu.Lock()
	defer g.lmu.Unlock()
	if g.lterm == 0 || g.followers == nil {
		return
	}
	cur := g.followers[from]
	g.followers[from] = progress{applied: max(applied, cur.applied), at: at}
}

// computeISR re-evaluates the leader's ISR for term; ok is false when g
// does not lead in term.
func (g *group) computeISR(term uint64, now time.Time) ([]int32, bool) {
	g.lmu.Lock()
	defer g.lmu.Unlock()
	if g.lterm != term {
		return nil, false
	}
	g.computeISRLocked(now)
	return slices.Clone(g.isr), true
}

// computeISRLocked: caller holds g.lmu.
func (g *group) computeISRLocked(now time.Time) {
	cfg := &g.rr.cfg
	self := g.rr.cfg.NodeID
	applied := g.raft.AppliedIndex()
	replicas := []int32{self}
	if mp := g.rr.metaPartition(g); mp != nil {
		replicas = mp.Replicas
	}
	isr := make([]int32, 0, len(replicas))
	for _, id := range replicas {
		if id == self {
			isr = append(isr, id)
			continue
		}
		f, ok := g.followers[id]
		if !ok || now.Sub(f.at) > cfg.ISRMaxLag {
			continue
		}
		if applied > f.applied && int64(applied-f.applied) > cfg.ISRMaxLagEntries {
			continue
		}
		isr = append(isr, id)
	}
	if !slices.Contains(isr, self) {
		isr = append(isr, self) // a leader outside the replica list still writes
	}
	g.isr = isr
	g.isrN.Store(int32(len(isr)))
}

// isrSize is the size of the leader's current ISR.
func (g *group) isrSize() int { return int(g.isrN.Load()) }

// leaderISR returns the leader's ISR of term.
func (g *group) leaderISR(term uint64) ([]int32, bool) {
	g.lmu.Lock()
	defer g.lmu.Unlock()
	if g.lterm != term || term == 0 {
		return nil, false
	}
	return slices.Clone(g.isr), true
}

// bestSuccessor picks the in-sync follower with the highest reported
// applied index, preferring one that is not draining.
func (g *group) bestSuccessor() (int32, bool) {
	self := g.rr.cfg.NodeID
	term := g.raft.CurrentTerm()
	g.lmu.Lock()
	defer g.lmu.Unlock()
	if g.lterm != term {
		return 0, false
	}
	best, found, bestDraining := int32(0), false, false
	var bestApplied uint64
	for _, id := range g.isr {
		if id == self {
			continue
		}
		a, d := g.followers[id].applied, g.rr.draining(id)
		if !found || (bestDraining && !d) || (d == bestDraining && a > bestApplied) {
			best, bestApplied, bestDraining, found = id, a, d, true
		}
	}
	return best, found
}
