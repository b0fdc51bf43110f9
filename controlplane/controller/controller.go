package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chronik-stream/chronik/controlplane/config"
	"github.com/chronik-stream/chronik/controlplane/internal/hclogslog"
	"github.com/chronik-stream/chronik/controlplane/metadata"
	"github.com/chronik-stream/chronik/controlplane/raftnet"
)

// Group is the name of the metadata Raft group on the raft port.
const Group = "__meta"

// missedHeartbeats is how many broker heartbeat intervals the leader waits
// before it marks a silent broker dead.
const missedHeartbeats = 3

// Config configures a Controller.
type Config struct {
	// NodeID is this node's id; it must be one of Cluster's peers.
	NodeID int32
	// DataDir is the node's data directory; the __meta log, stable store
	// and snapshots live under DataDir/meta.
	DataDir string
	// Cluster is the validated cluster.toml.
	Cluster *config.Cluster
	// Mux is the node's raft port, shared with the partition groups. Its
	// LocalAddr should be this node's peer RaftAddr.
	Mux *raftnet.Mux
	// Logger receives the controller's logs and hashicorp/raft's. Nil
	// discards them.
	Logger *slog.Logger
	// Registerer receives the __meta metrics while Run runs. Nil skips them.
	Registerer prometheus.Registerer

	// AdvertisedHost and AdvertisedPort are the Kafka endpoint this node
	// registers as a broker. Zero values take the host and port of the
	// peer's addr in cluster.toml.
	AdvertisedHost string
	AdvertisedPort int32
	// Rack overrides the peer's rack from cluster.toml when set.
	Rack string

	// BrokerHeartbeatInterval is how often a broker reports to the leader.
	// Zero means [isr] check_interval_ms (1 s by default). The leader marks
	// a broker dead after 3 intervals without a heartbeat.
	BrokerHeartbeatInterval time.Duration
	// SnapshotInterval is how often __meta checks whether
	// snapshot_threshold entries have accumulated. Zero means 10 s.
	SnapshotInterval time.Duration
}

// Controller runs this node's part of the control plane: on controller
// peers the __meta Raft replica, and on broker peers the registration,
// heartbeats and metadata image the local broker uses.
type Controller struct {
	cfg         Config
	log         *slog.Logger
	self        config.Peer
	controllers []config.Peer
	quorum      int
	isCtl       bool
	isBroker    bool
	hbInterval  time.Duration

	fsm  *fsm  // controllers only
	view *view // the fsm's view, or the watched image on broker-only nodes

	raft       atomic.Pointer[raft.Raft] // set while Run runs (controllers)
	trans      *raftnet.GroupTransport   // __meta's, controllers only
	stores     *stores
	started    atomic.Bool
	stopped    chan struct{} // closed when Run starts stopping
	ready      chan struct{}
	readyOnce  sync.Once
	leaderOK   atomic.Bool // leader of the current term, caught up
	events     metadata.Watch
	hint       atomic.Pointer[leaderRef] // leader as last heard, broker-only
	health     *health
	live       *liveness
	restoresAt int64 // fsm restores when NewRaft returned
	// registeredSeen is set once this node's broker record was in the
	// image; retired once it is gone again (see voters.go).
	registeredSeen atomic.Bool
	retired        atomic.Bool
	vmu            sync.Mutex
	removed        map[int32]bool // voters this leader removed; guarded by vmu
	segSize        int            // raft-wal segment size; tests shrink it

	mu     sync.Mutex // guards closed and wg.Add
	closed bool
	wg     sync.WaitGroup
}

// New checks cfg and prepares a Controller; Run starts it.
func New(cfg Config) (*Controller, error) {
	if cfg.Cluster == nil {
		return nil, errors.New("controller: no cluster configuration")
	}
	if cfg.Mux == nil {
		return nil, errors.New("controller: no raft port mux")
	}
	self, ok := cfg.Cluster.Peer(cfg.NodeID)
	if !ok {
		return nil, fmt.Errorf("controller: node %d: %w", cfg.NodeID, ErrUnknownNode)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.AdvertisedHost == "" {
		cfg.AdvertisedHost = self.Host()
	}
	if cfg.AdvertisedPort == 0 {
		cfg.AdvertisedPort = int32(self.KafkaPort())
	}
	if cfg.Rack == "" {
		cfg.Rack = self.Rack
	}
	if cfg.SnapshotInterval <= 0 {
		cfg.SnapshotInterval = 10 * time.Second
	}
	c := &Controller{
		cfg:         cfg,
		log:         cfg.Logger.With("component", "controller", "node_id", cfg.NodeID),
		self:        self,
		controllers: cfg.Cluster.Controllers(),
		quorum:      cfg.Cluster.QuorumSize(),
		isCtl:       self.HasRole(config.RoleController),
		isBroker:    self.HasRole(config.RoleBroker),
		hbInterval:  brokerHeartbeatInterval(cfg),
		stopped:     make(chan struct{}),
		ready:       make(chan struct{}),
		segSize:     defaultSegmentSize,
	}
	if c.isCtl && cfg.DataDir == "" {
		return nil, errors.New("controller: no data directory")
	}
	if c.isCtl {
		c.fsm = newFSM()
		c.view = c.fsm.view
	} else {
		c.view = newView(metadata.NewState(""))
	}
	c.health = newHealth(c)
	c.live = newLiveness(c)
	if addr := cfg.Mux.LocalAddr(); addr != self.RaftAddr() {
		c.log.Warn("raft port address differs from cluster.toml", "mux_addr", addr, "peer_raft_addr", self.RaftAddr())
	}
	return c, nil
}

func brokerHeartbeatInterval(cfg Config) time.Duration {
	switch {
	case cfg.BrokerHeartbeatInterval > 0:
		return cfg.BrokerHeartbeatInterval
	case cfg.Cluster.ISR.CheckInterval > 0:
		return cfg.Cluster.ISR.CheckInterval
	}
	return config.DefaultISRCheckInterval
}

// Run starts the node's control-plane work and serves until ctx ends. On a
// controller peer it opens the __meta replica, waits for a quorum of
// controllers to answer health checks, bootstraps the group from
// cluster.toml on first start and follows or leads it. On a broker peer it
// registers the broker and heartbeats to the leader. It returns once
// everything it started has stopped.
func (c *Controller) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("controller: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.logStartup()
	if c.isCtl {
		if err := c.startRaft(); err != nil {
			close(c.stopped)
			return err
		}
	}
	c.registerHandlers()
	unregister := c.registerMetrics()
	defer unregister()

	errc := make(chan error, 1)
	c.goFunc(func() { c.health.run(ctx) })
	if c.isCtl {
		c.goFunc(func() {
			if err := c.runBootstrap(ctx); err != nil {
				errc <- err
				return
			}
			c.goFunc(func() { c.observeLeader(ctx) })
			c.goFunc(func() { c.leadLoop(ctx) })
			c.goFunc(func() { c.readyLoop(ctx) })
		})
	} else {
		c.goFunc(func() { c.watchLoop(ctx) })
	}
	if c.isBroker {
		c.goFunc(func() { c.brokerLoop(ctx) })
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	return errors.Join(err, c.stop())
}

// logStartup logs the guide's coordinator lines.
func (c *Controller) logStartup() {
	var others []int32
	for _, p := range c.cfg.Cluster.Peers {
		if p.ID != c.cfg.NodeID {
			others = append(others, p.ID)
		}
	}
	c.log.Info(fmt.Sprintf("Creating ClusterCoordinator for node %d with %d peers", c.cfg.NodeID, len(others)),
		"roles", c.self.Roles)
	if !c.isCtl {
		c.log.Info("Node runs no metadata partition; following the controllers",
			"controllers", peerIDs(c.controllers))
		return
	}
	c.log.Info(fmt.Sprintf("Creating metadata partition with peers: %s", formatIDs(c.otherControllers())))
}

// startRaft opens the stores and starts the __meta replica.
func (c *Controller) startRaft() error {
	dir := filepath.Join(c.cfg.DataDir, "meta")
	hl := hclogslog.New(c.log.With("raft_group", Group))
	st, err := openStores(dir, c.segSize, hl)
	if err != nil {
		return fmt.Errorf("open __meta stores: %w", err)
	}
	c.trans = c.cfg.Mux.Transport(Group)
	r, err := raft.NewRaft(c.raftConfig(hl), c.fsm, st.logs, st.wal, st.snaps, c.trans)
	if err != nil {
		_ = st.close()
		return fmt.Errorf("start __meta raft: %w", err)
	}
	c.stores = st
	c.restoresAt = c.fsm.restores.Load()
	c.raft.Store(r)
	return nil
}

// raftConfig maps [raft] onto hashicorp's timers. hashicorp's
// HeartbeatTimeout is how long a follower waits before it stands for
// election, and its leader heartbeats every HeartbeatTimeout/10; so the
// follower timeout is election_timeout_ms, raised to ten heartbeat
// intervals if heartbeat_interval_ms asks for slower heartbeats. The
// heartbeat interval is also the commit tick: how long the leader waits to
// tell followers of a commit when no new entry carries it. The leader's
// lease equals the follower timeout.
func (c *Controller) raftConfig(hl *hclogslog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(strconv.Itoa(int(c.cfg.NodeID)))
	t := c.cfg.Cluster.Raft
	et := cmpOr(t.ElectionTimeout, config.DefaultElectionTimeout)
	hi := cmpOr(t.HeartbeatInterval, config.DefaultHeartbeatInterval)
	timeout := max(et, 10*hi)
	rc.HeartbeatTimeout = timeout
	rc.ElectionTimeout = timeout
	rc.LeaderLeaseTimeout = timeout
	rc.CommitTimeout = hi
	rc.SnapshotThreshold = cmpOr(t.SnapshotThreshold, config.DefaultSnapshotThreshold)
	// Keep as many entries behind a snapshot as the threshold, so that a
	// briefly lagging follower catches up from the log, not a snapshot.
	rc.TrailingLogs = rc.SnapshotThreshold
	rc.SnapshotInterval = c.cfg.SnapshotInterval
	rc.ShutdownOnRemove = false
	rc.NoLegacyTelemetry = true
	rc.Logger = hl
	return rc
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// stop shuts everything down in order: no new goroutines, Raft (which
// answers its pending futures), the goroutines, then the stores.
func (c *Controller) stop() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	close(c.stopped)
	var err error
	if r := c.raft.Load(); r != nil {
		// Closing the transport first ends requests that wait for a
		// stopped peer, which Shutdown would otherwise wait out.
		c.trans.Close()
		if e := r.Shutdown().Error(); e != nil {
			err = fmt.Errorf("shut down __meta raft: %w", e)
		}
	}
	c.wg.Wait()
	if c.stores != nil {
		if e := c.stores.close(); e != nil {
			err = errors.Join(err, fmt.Errorf("close __meta stores: %w", e))
		}
	}
	c.leaderOK.Store(false)
	c.events.Notify()
	c.log.Info("controller stopped")
	return err
}

// goFunc runs f as a goroutine owned by Run, unless Run is stopping.
func (c *Controller) goFunc(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

func (c *Controller) isStopped() bool {
	select {
	case <-c.stopped:
		return true
	default:
		return false
	}
}

// Ready returns a channel closed once a __meta leader exists and this
// node's image has caught up with what it had committed (controllers), or
// once a first image arrived from a ready controller (broker-only nodes).
func (c *Controller) Ready() <-chan struct{} { return c.ready }

func (c *Controller) markReady(how string) {
	c.readyOnce.Do(func() {
		close(c.ready)
		c.events.Notify()
		c.log.Info("controller ready", "how", how, "leader_id", c.LeaderID(), "metadata_index", c.view.load().Index)
	})
}

func (c *Controller) isReady() bool {
	select {
	case <-c.ready:
		return true
	default:
		return false
	}
}

// IsLeader reports whether this node leads __meta.
func (c *Controller) IsLeader() bool {
	r := c.raft.Load()
	return r != nil && !c.isStopped() && r.State() == raft.Leader
}

// LeaderID returns the __meta leader's node id, or 0 if none is known.
func (c *Controller) LeaderID() int32 {
	return c.leader().LeaderID
}

// leader returns the __meta leader as this node knows it.
func (c *Controller) leader() leaderRef {
	if c.isStopped() {
		return leaderRef{}
	}
	if r := c.raft.Load(); r != nil {
		addr, id := r.LeaderWithID()
		n, err := strconv.ParseInt(string(id), 10, 32)
		if err != nil || addr == "" {
			return leaderRef{}
		}
		return leaderRef{LeaderID: int32(n), LeaderAddr: string(addr)}
	}
	if h := c.hint.Load(); h != nil {
		return *h
	}
	return leaderRef{}
}

// noteLeader records a leader reported by a peer, on broker-only nodes.
func (c *Controller) noteLeader(ref leaderRef) {
	if c.isCtl || ref.LeaderID == 0 {
		return
	}
	if old := c.hint.Load(); old == nil || *old != ref {
		c.hint.Store(&ref)
		c.events.Notify()
	}
}

// Stats returns the __meta term, commit index and applied index. On a
// broker-only node term and commit are 0 and applied is the index of the
// watched image.
func (c *Controller) Stats() (term, commit, applied uint64) {
	r := c.raft.Load()
	if r == nil {
		return 0, 0, c.view.load().Index
	}
	return r.CurrentTerm(), r.CommitIndex(), r.AppliedIndex()
}

// Service returns the metadata service for the local broker.
func (c *Controller) Service() metadata.Service { return service{c} }

// service adapts the Controller to metadata.Service.
type service struct{ c *Controller }

func (s service) State() *metadata.State { return s.c.view.load() }

func (s service) Changed() <-chan struct{} { return s.c.view.Changed() }

func (s service) Propose(ctx context.Context, cmd *metadata.Command) (metadata.Result, error) {
	return s.c.propose(ctx, cmd)
}

func (c *Controller) otherControllers() []int32 {
	var ids []int32
	for _, p := range c.controllers {
		if p.ID != c.cfg.NodeID {
			ids = append(ids, p.ID)
		}
	}
	return ids
}

func peerIDs(ps []config.Peer) []int32 {
	ids := make([]int32, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return ids
}

// formatIDs renders ids as the guide does: [2, 3].
func formatIDs(ids []int32) string {
	s := slices.Clone(ids)
	slices.Sort(s)
	b := []byte{'['}
	for i, id := range s {
		if i > 0 {
			b = append(b, ',', ' ')
		}
		b = strconv.AppendInt(b, int64(id), 10)
	}
	return string(append(b, ']'))
}

// waitEvent waits for the next leadership or readiness event, at most d.
func (c *Controller) waitEvent(ctx context.Context, ch <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.stopped:
		return ErrStopped
	}
	return nil
}
