package replica

// Cluster mode: every partition replica is a member of the partition's own
// hashicorp/raft group, and the Kafka write path goes through it.
//
// # Groups
//
// A replica hosted here runs the group "<topic>/<partition>" over the
// node's raftnet Mux. Server ids are node ids in decimal, addresses the
// peers' Raft addresses (cluster.toml, else the broker's registered one).
// The members are the partition's replica list from the metadata; every
// replica of a new partition bootstraps the group with that same list when
// it has no Raft state, while one added later waits for the leader to add it.
// The Raft log and stable store are raft-wal in <partition dir>/raft with
// 64 MiB segments that are not preallocated (raft_wal.go), behind a cache
// of the newest entries that empties once the group is idle
// (raft_cache.go); snapshots live in
// <partition dir>/snapshots. Partition groups tick slowly (DESIGN.md, "Many
// partitions per broker"): the commit tick defaults to [raft]
// partition_commit_timeout_ms (3 s by default) and the failure detector to
// the partition heartbeat and election timeouts.
//
// # State machine
//
// An entry is one record batch, applied with partition.Apply at the
// entry's term as leader epoch, or a DeleteRecords. After each batch the
// high watermark moves to the log end: on the leader that is the commit
// point; a follower learns the commit index with the leader's next append
// or commit tick, so the high watermark it could serve lags by at most one
// tick. The Raft term is the Kafka leader epoch.
//
// The partition log is itself the state, so a snapshot records only where
// the log ended, its start offset and the producer table; Persist fsyncs
// the log up to that end first. Restoring a snapshot at start-up cuts the
// log back to the snapshot's end, since Raft then re-applies the entries
// after it and must append the same bytes exactly once; with no snapshot
// the log starts empty and Raft replays from index 1. A replica that
// installs a leader's snapshot already holds a prefix of the leader's log
// (only committed entries are ever applied) and copies the missing range
// from a replica that has it (replica.read), batch for batch with the
// original offsets and leader epochs, so the logs stay byte-identical.
//
// # Writes
//
// Produce proposes at once, on the caller's goroutine, so a connection's
// requests keep their order, and returns a wait for the entry's commit and
// apply. The leader writes the batch to its log when it applies the entry,
// after commit, so acks=1 waits for commit too. A node serves as leader
// (IsLeader, Produce, fetches) only once its state machine has applied
// everything of earlier terms (a Raft barrier at the start of each term).
//
// # In-sync replicas
//
// hashicorp/raft does not expose its followers' progress. Every
// isr.check_interval each broker sends each peer one replica.isr message
// with the applied index of every partition it follows that the peer
// leads. A leader counts a follower in sync while its last report is
// younger than isr.max_lag and within isr.max_lag_entries entries of the
// leader's applied index; a new leader starts from the ISR in the metadata.
// acks=-1 is refused with NOT_ENOUGH_REPLICAS while the ISR is smaller than
// min.insync.replicas. Leaders report their leadership (epoch = term) and
// ISR changes to the metadata, and bring the group's membership in line
// with the replica list there, one change at a time.
//
// A node the metadata marks draining leads nothing for long: a leadership
// Raft gives it anyway is handed to an in-sync replica that is not
// draining, and every hand-off (SIGTERM, a removed or broken leader)
// prefers such a replica.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/chronik-stream/chronik/controlplane/config"
	"github.com/chronik-stream/chronik/controlplane/metadata"
	"github.com/chronik-stream/chronik/controlplane/raftnet"
	"github.com/chronik-stream/chronik/dataplane/internal/partition"
	"github.com/chronik-stream/chronik/dataplane/internal/storage"
)

// Errors of the cluster write path's admin calls.
var (
	ErrNotLeader        = errors.New("replica: this node does not lead the partition")
	ErrUnknownPartition = errors.New("replica: partition not hosted here")
	ErrNoTarget         = errors.New("replica: no in-sync replica to take over leadership")
)

// Internal RPC methods served on the Raft port.
const (
	methodRead = "replica.read"
	methodISR  = "replica.isr"
)

// RaftConfig configures RaftReplicas. Zero durations and counts take the
// values of Cluster (see config.Raft and config.ISR), then the defaults
// documented on each field.
type RaftConfig struct {
	// Config is the Manager's; its Attach is set by NewRaftReplicas.
	Config
	Mux     *raftnet.Mux
	Cluster *config.Cluster
	// Registerer receives the per-partition Raft and ISR metrics; nil
	// registers nothing.
	Registerer prometheus.Registerer

	HeartbeatTimeout   time.Duration // follower timeout
	ElectionTimeout    time.Duration // candidate timeout
	CommitTimeout      time.Duration // commit tick
	LeaderLeaseTimeout time.Duration // default HeartbeatTimeout
	SnapshotThreshold  uint64
	// SnapshotInterval is how often a group checks SnapshotThreshold
	// (default 10 s).
	SnapshotInterval time.Duration
	// TrailingLogs is how many entries stay in the Raft log behind a
	// snapshot (default 1024); a follower further behind catches up by
	// snapshot, which costs only the copy of its missing data.
	TrailingLogs uint64

	ISRMaxLag        time.Duration
	ISRMaxLagEntries int64
	ISRCheckInterval time.Duration

	// FailureProbeInterval is how often each peer is probed (default
	// 100 ms; negative disables the detector, see raft_detect.go), and
	// FailureProbeTimeout bounds one probe (default 250 ms).
	FailureProbeInterval time.Duration
	FailureProbeTimeout  time.Duration
	// FailureProbeMisses is how many probes in a row a peer misses before
	// it is suspected (default 2).
	FailureProbeMisses int
	// FastTimeout is the heartbeat and election timeout of groups whose
	// leader is suspected (default: [raft] election_timeout_ms, at least
	// three leader heartbeats). It also caps LeaderLeaseTimeout, which
	// hashicorp/raft requires to stay at or below the heartbeat timeout.
	FastTimeout time.Duration

	// WALSegmentSize is the raft-wal segment size (default 64 MiB; files
	// are not preallocated, so an idle group's segment costs no disk).
	WALSegmentSize int
	// LogCacheSize is how many recent entries each group keeps in memory
	// while it takes writes (default 32); a follower drops each entry once
	// it has applied it, a leader once every follower has stored it.
	LogCacheSize int
	// ApplyTimeout bounds the hand-over of a proposal to Raft (default 5 s).
	ApplyTimeout time.Duration
	// ReadBytes is the size of one replica.read during catch-up (default
	// 1 MiB).
	ReadBytes int
	// RPCTimeout bounds each replica.read and replica.isr call (default
	// 10 s; replica.isr uses at most the check interval).
	RPCTimeout time.Duration
}

func (c *RaftConfig) setDefaults() {
	var cr config.Raft
	var ci config.ISR
	if c.Cluster != nil {
		cr, ci = c.Cluster.Raft, c.Cluster.ISR
	}
	dur := func(v *time.Duration, from, def time.Duration) {
		if *v <= 0 {
			*v = from
		}
		if *v <= 0 {
			*v = def
		}
	}
	dur(&c.CommitTimeout, cr.PartitionCommitTimeout, config.MinPartitionCommitTimeout)
	dur(&c.HeartbeatTimeout, cr.PartitionHeartbeatTimeout, max(2*c.CommitTimeout, config.DefaultElectionTimeout))
	dur(&c.ElectionTimeout, cr.PartitionElectionTimeout, c.HeartbeatTimeout)
	c.ElectionTimeout = max(c.ElectionTimeout, c.HeartbeatTimeout)
	// hashicorp/raft heartbeats every HeartbeatTimeout/10.
	dur(&c.FastTimeout, max(cr.ElectionTimeout, 3*c.HeartbeatTimeout/10), config.DefaultElectionTimeout)
	c.FastTimeout = min(c.FastTimeout, c.HeartbeatTimeout)
	dur(&c.LeaderLeaseTimeout, c.FastTimeout, c.FastTimeout)
	c.LeaderLeaseTimeout = min(c.LeaderLeaseTimeout, c.FastTimeout)
	dur(&c.FailureProbeInterval, 0, 100*time.Millisecond)
	dur(&c.FailureProbeTimeout, 0, 250*time.Millisecond)
	if c.FailureProbeMisses <= 0 {
		c.FailureProbeMisses = 2
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = cr.SnapshotThreshold
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = config.DefaultSnapshotThreshold
	}
	dur(&c.SnapshotInterval, 0, 10*time.Second)
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 1024
	}
	dur(&c.ISRMaxLag, ci.MaxLag, config.DefaultISRMaxLag)
	if c.ISRMaxLagEntries <= 0 {
		c.ISRMaxLagEntries = ci.MaxLagEntries
	}
	if c.ISRMaxLagEntries <= 0 {
		c.ISRMaxLagEntries = config.DefaultISRMaxLagEntries
	}
	dur(&c.ISRCheckInterval, ci.CheckInterval, config.DefaultISRCheckInterval)
	if c.WALSegmentSize <= 0 {
		c.WALSegmentSize = 64 << 20
	}
	if c.LogCacheSize <= 0 {
		c.LogCacheSize = 32
	}
	dur(&c.ApplyTimeout, 0, 5*time.Second)
	if c.ReadBytes <= 0 {
		c.ReadBytes = 1 << 20
	}
	dur(&c.RPCTimeout, 0, 10*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// RaftReplicas is the cluster-mode write path: a Manager whose replicas
// each run their partition's Raft group. It implements kafka.Replicas.
type RaftReplicas struct {
	cfg RaftConfig
	m   *Manager
	log *slog.Logger
	id  raft.ServerID

	obsCh    chan raft.Observation
	observer *raft.Observer
	wake     chan struct{} // a barrier finished: re-run the leader checks
	reports  reportQueue
	det      *detector

	mu     sync.RWMutex
	groups map[key]*group

	ctx    context.Context // ends when Run returns
	cancel context.CancelFunc
	wg     sync.WaitGroup // barriers and peer reports started by the loop

	unregister func()
}

// NewRaftReplicas returns the cluster-mode replica set. Call Open, then
// Run.
func NewRaftReplicas(cfg RaftConfig) (*RaftReplicas, error) {
	if cfg.Mux == nil || cfg.Meta == nil {
		return nil, errors.New("replica: cluster mode needs a raft mux and a metadata service")
	}
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	rr := &RaftReplicas{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "raft-replicas", "node_id", cfg.NodeID),
		id:     serverID(cfg.NodeID),
		obsCh:  make(chan raft.Observation, 1024),
		wake:   make(chan struct{}, 1),
		groups: map[key]*group{},
		ctx:    ctx,
		cancel: cancel,
	}
	rr.reports.init()
	rr.det = newDetector(rr)
	rr.observer = raft.NewObserver(rr.obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	})
	mcfg := cfg.Config
	mcfg.Attach = rr.attach
	rr.m = New(mcfg)
	cfg.Mux.Handle(methodRead, rr.serveRead)
	cfg.Mux.Handle(methodISR, rr.serveISR)
	cfg.Mux.Handle(methodTransfer, rr.serveTransfer)
	cfg.Mux.Handle(methodState, rr.serveState)
	cfg.Mux.Handle(methodPing, rr.servePing)
	rr.unregister = rr.registerMetrics()
	rr.log.Info("partition raft timings",
		"heartbeat_timeout", cfg.HeartbeatTimeout, "election_timeout", cfg.ElectionTimeout,
		"commit_timeout", cfg.CommitTimeout, "fast_timeout", cfg.FastTimeout,
		"leader_lease_timeout", cfg.LeaderLeaseTimeout, "probe_interval", cfg.FailureProbeInterval)
	return rr, nil
}

func serverID(id int32) raft.ServerID { return raft.ServerID(strconv.Itoa(int(id))) }

func nodeID(id raft.ServerID) (int32, bool) {
	n, err := strconv.ParseInt(string(id), 10, 32)
	return int32(n), err == nil
}

// Open opens and starts every replica the metadata assigns here.
func (rr *RaftReplicas) Open() error { return rr.m.Open() }

// Run follows the metadata, keeps ISRs and leadership reports current and
// runs retention until ctx ends; then it shuts every group down and closes
// the replicas.
func (rr *RaftReplicas) Run(ctx context.Context) error {
	mctx, stopManager := context.WithCancel(context.WithoutCancel(ctx))
	defer stopManager()
	mdone := make(chan error, 1)
	go func() { mdone <- rr.m.Run(mctx) }()
	rdone := make(chan struct{})
	go func() {
		defer close(rdone)
		rr.runReporter(rr.ctx)
	}()
	ddone := make(chan struct{})
	go func() {
		defer close(ddone)
		rr.det.run(rr.ctx)
	}()

	rr.loop(ctx)

	rr.cancel()
	<-rdone
	<-ddone
	rr.wg.Wait()
	rr.stopAll()
	stopManager()
	err := <-mdone
	rr.cfg.Mux.Handle(methodRead, nil)
	rr.cfg.Mux.Handle(methodISR, nil)
	rr.cfg.Mux.Handle(methodTransfer, nil)
	rr.cfg.Mux.Handle(methodState, nil)
	rr.cfg.Mux.Handle(methodPing, nil)
	rr.unregister()
	return err
}

// stopAll shuts every group down at once (Manager's close then finds them
// detached).
func (rr *RaftReplicas) stopAll() {
	rr.mu.Lock()
	gs := make([]*group, 0, len(rr.groups))
	for _, g := range rr.groups {
		gs = append(gs, g)
	}
	rr.mu.Unlock()
	var wg sync.WaitGroup
	for _, g := range gs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rr.detach(g)
		}()
	}
	wg.Wait()
}

// Partition returns the local replica of topic/index, or nil.
func (rr *RaftReplicas) Partition(topic string, index int32) *partition.Partition {
	return rr.m.Partition(topic, index)
}

// Await returns once every replica of topic assigned here is open.
func (rr *RaftReplicas) Await(ctx context.Context, topic string) error {
	return rr.m.Await(ctx, topic)
}

func (rr *RaftReplicas) group(topic string, index int32) *group {
	rr.mu.RLock()
	defer rr.mu.RUnlock()
	return rr.groups[key{topic, index}]
}

// groupOf returns the running group of p, or nil.
func (rr *RaftReplicas) groupOf(p *partition.Partition) *group {
	if g := rr.group(p.Topic, p.Index); g != nil && g.p == p {
		return g
	}
	return nil
}

// IsLeader reports whether this node leads p's group and has applied
// everything of earlier terms, with the current term as leader epoch.
func (rr *RaftReplicas) IsLeader(p *partition.Partition) (bool, int32) {
	g := rr.groupOf(p)
	if g == nil {
		return false, -1
	}
	term := g.raft.CurrentTerm()
	return g.ready(term), int32(term)
}

var errNotLeader = fmt.Errorf("%w", kerr.NotLeaderForPartition)

// Produce proposes one validated batch to p's group and returns a wait for
// its commit and apply (for acks 1 and -1 alike; see the package notes).
func (rr *RaftReplicas) Produce(ctx context.Context, p *partition.Partition, records []byte, acks int16) (func(context.Context) (partition.AppendResult, error), error) {
	g := rr.groupOf(p)
	if g != nil {
		g.settle(ctx)
	}
	if g == nil || !g.ready(g.raft.CurrentTerm()) {
		return nil, errNotLeader
	}
	if acks == -1 && int32(g.isrSize()) < p.MinInsyncReplicas() {
		return nil, fmt.Errorf("produce to %s: isr %d below min.insync.replicas %d: %w", g.name, g.isrSize(), p.MinInsyncReplicas(), kerr.NotEnoughReplicas)
	}
	done, err := g.propose(encodeBatchEntry(records))
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) (partition.AppendResult, error) {
		resp, err := done.wait(ctx)
		if err != nil {
			return partition.AppendResult{}, err
		}
		r, ok := resp.(applyResult)
		if !ok {
			return partition.AppendResult{}, fmt.Errorf("produce to %s: unexpected apply result %T", g.name, resp)
		}
		return r.res, r.err
	}, nil
}

// DeleteRecords moves the log start offset of every replica of p through
// its group. offset -1 means the high watermark.
func (rr *RaftReplicas) DeleteRecords(ctx context.Context, p *partition.Partition, offset int64) (int64, error) {
	g := rr.groupOf(p)
	if g == nil || !g.ready(g.raft.CurrentTerm()) {
		return 0, errNotLeader
	}
	if offset == -1 {
		offset = p.HighWatermark()
	}
	if offset < 0 || offset > p.HighWatermark() {
		return 0, storage.ErrOffsetOutOfRange
	}
	done, err := g.propose(encodeDeleteEntry(offset))
	if err != nil {
		return 0, err
	}
	resp, err := done.wait(ctx)
	if err != nil {
		return 0, err
	}
	r, ok := resp.(deleteResult)
	if !ok {
		return 0, fmt.Errorf("delete records of %s: unexpected apply result %T", g.name, resp)
	}
	return r.low, r.err
}

// Transfer hands the leadership of topic/index to node to, or to the most
// caught-up in-sync replica when to <= 0, and returns once it moved.
func (rr *RaftReplicas) Transfer(ctx context.Context, topic string, index int32, to int32) error {
	g := rr.group(topic, index)
	if g == nil {
		return fmt.Errorf("transfer %s/%d: %w", topic, index, ErrUnknownPartition)
	}
	f, err := rr.startTransfer(g, to)
	if err != nil {
		return err
	}
	return rr.finishTransfer(ctx, g, to, f)
}

// finishTransfer waits for the transfer f of g to node to (or any, when
// to <= 0). Raft runs one transfer per group at a time; when another was
// under way (a draining node handing its leadership on), finishTransfer
// waits for that one to end. If it moved the leadership where f would
// have, that is success; if the leadership went elsewhere, it returns
// ErrNotLeader, so that the caller asks the new leader; if it failed,
// finishTransfer starts f again. Raft also refuses a transfer its leader
// loop is not waiting for at that instant (ErrEnqueueTimeout: the hand-over
// does not block), which happens while the loop is busy with another
// transfer or a burst of work; that one is started again too.
func (rr *RaftReplicas) finishTransfer(ctx context.Context, g *group, to int32, f raft.Future) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := rr.awaitTransfer(ctx, g, f)
		if !errors.Is(err, raft.ErrLeadershipTransferInProgress) && !errors.Is(err, raft.ErrEnqueueTimeout) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (waiting for it: %w)", err, ctx.Err())
		case <-tick.C:
		}
		if g.raft.State() != raft.Leader {
			if _, lid := g.raft.LeaderWithID(); to <= 0 || lid == serverID(to) {
				return nil
			}
			return fmt.Errorf("transfer %s: %w", g.name, ErrNotLeader)
		}
		if f, err = rr.startTransfer(g, to); err != nil {
			return err
		}
	}
}

// TransferAll hands every leadership this node holds to an in-sync
// replica, so that stopping it fails no produce request (SIGTERM). Groups
// with no other in-sync replica keep their leader and are reported.
func (rr *RaftReplicas) TransferAll(ctx context.Context) error {
	rr.mu.RLock()
	gs := make([]*group, 0, len(rr.groups))
	for _, g := range rr.groups {
		gs = append(gs, g)
	}
	rr.mu.RUnlock()
	type pending struct {
		g *group
		f raft.Future
	}
	var ps []pending
	var errs []error
	for _, g := range gs {
		if g.raft.State() != raft.Leader {
			continue
		}
		f, err := rr.startTransfer(g, 0)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ps = append(ps, pending{g, f})
	}
	for _, p := range ps {
		if err := rr.finishTransfer(ctx, p.g, 0, p.f); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (rr *RaftReplicas) startTransfer(g *group, to int32) (raft.Future, error) {
	if g.raft.State() != raft.Leader {
		return nil, fmt.Errorf("transfer %s: %w", g.name, ErrNotLeader)
	}
	if to <= 0 {
		var ok bool
		if to, ok = g.bestSuccessor(); !ok {
			return nil, fmt.Errorf("transfer %s: %w", g.name, ErrNoTarget)
		}
	}
	if to == rr.cfg.NodeID {
		return nil, nil // already there
	}
	addr, ok := rr.addr(to)
	if !ok {
		return nil, fmt.Errorf("transfer %s to %d: no raft address: %w", g.name, to, ErrNoTarget)
	}
	rr.log.Info("transferring partition leadership", "raft_group", g.name, "to", to)
	return g.raft.LeadershipTransferToServer(serverID(to), raft.ServerAddress(addr)), nil
}

// awaitTransfer waits for a transfer; Raft answers once this node has
// left the leader state, or after an election timeout.
func (rr *RaftReplicas) awaitTransfer(ctx context.Context, g *group, f raft.Future) error {
	if f == nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("transfer %s: %w", g.name, err)
	}
	if err := f.Error(); err != nil {
		return fmt.Errorf("transfer %s: %w", g.name, err)
	}
	return nil
}

// addr returns the Raft address of node id: its cluster.toml peer entry,
// else what the broker registered.
func (rr *RaftReplicas) addr(id int32) (string, bool) {
	if rr.cfg.Cluster != nil {
		if p, ok := rr.cfg.Cluster.Peer(id); ok {
			return p.RaftAddr(), true
		}
	}
	if b := rr.cfg.Meta.State().Brokers[id]; b != nil && b.RaftAddr != "" {
		return b.RaftAddr, true
	}
	return "", false
}

// PartitionStatus is the Raft view of one hosted replica.
type PartitionStatus struct {
	Topic        string
	Partition    int32
	Leader       int32 // 0 when unknown
	IsLeader     bool
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LastIndex    uint64 // the newest entry stored here, committed or not
	// ISR is the leader's current view; on a follower, the metadata's.
	ISR               []int32
	MinInsyncReplicas int32
}

// Status lists the hosted replicas, sorted by topic and partition.
func (rr *RaftReplicas) Status() []PartitionStatus {
	rr.mu.RLock()
	gs := make([]*group, 0, len(rr.groups))
	for _, g := range rr.groups {
		gs = append(gs, g)
	}
	rr.mu.RUnlock()
	st := rr.cfg.Meta.State()
	out := make([]PartitionStatus, 0, len(gs))
	for _, g := range gs {
		s := PartitionStatus{
			Topic: g.k.topic, Partition: g.k.index,
			Term: g.raft.CurrentTerm(), CommitIndex: g.raft.CommitIndex(), AppliedIndex: g.raft.AppliedIndex(),
			LastIndex: g.raft.LastIndex(), MinInsyncReplicas: g.p.MinInsyncReplicas(),
		}
		_, lid := g.raft.LeaderWithID()
		s.Leader, _ = nodeID(lid)
		s.IsLeader = g.raft.State() == raft.Leader
		if isr, ok := g.leaderISR(s.Term); ok && s.IsLeader {
			s.ISR = isr
		} else if mp := st.Partition(g.k.topic, g.k.index); mp != nil {
			s.ISR = slices.Clone(mp.ISR)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b PartitionStatus) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
	return out
}

// metaPartition returns the metadata's view of g's partition, or nil.
func (rr *RaftReplicas) metaPartition(g *group) *metadata.Partition {
	return rr.cfg.Meta.State().Partition(g.k.topic, g.k.index)
}
