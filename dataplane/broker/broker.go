// Package broker is the embeddable Chronik broker: New builds it from a
// Config, Run serves until its context ends. chronik-server and the tests
// start brokers through this package only.
package broker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/chronik-stream/chronik/controlplane/adminapi"
	"github.com/chronik-stream/chronik/controlplane/assign"
	"github.com/chronik-stream/chronik/controlplane/config"
	"github.com/chronik-stream/chronik/controlplane/controller"
	"github.com/chronik-stream/chronik/controlplane/metadata"
	"github.com/chronik-stream/chronik/controlplane/raftnet"
	"github.com/chronik-stream/chronik/dataplane/internal/group"
	"github.com/chronik-stream/chronik/dataplane/internal/kafka"
	"github.com/chronik-stream/chronik/dataplane/internal/partition"
	"github.com/chronik-stream/chronik/dataplane/internal/replica"
	"github.com/chronik-stream/chronik/dataplane/internal/storage"
	"github.com/chronik-stream/chronik/dataplane/internal/telemetry"
)

// Config configures a broker. Zero values take the documented defaults.
type Config struct {
	NodeID         int32  // default 1
	DataDir        string // default ./data
	BindAddr       string // default 0.0.0.0
	KafkaPort      int    // default 9092
	AdvertisedHost string // default: BindAddr, or localhost when that is 0.0.0.0
	AdvertisedPort int    // default KafkaPort
	Version        string
	Logger         *slog.Logger
	// Listener, when set, is used instead of binding BindAddr:KafkaPort.
	Listener net.Listener

	AutoCreateTopics         bool  // auto.create.topics.enable
	DefaultPartitions        int32 // num.partitions, default 1
	DefaultReplicationFactor int16 // default.replication.factor, default 1
	MaxRequestBytes          int32 // socket.request.max.bytes, default 100 MiB
	// RetentionCheck is how often retention runs, default 1 minute.
	RetentionCheck time.Duration
	// Storage holds broker-wide log defaults (zero fields take Kafka's).
	Storage storage.Config
	// OffsetsPartitions is offsets.topic.num.partitions, default 16.
	OffsetsPartitions int32
	// GroupInitialRebalanceDelay is group.initial.rebalance.delay.ms
	// (default 3 s; negative disables it).
	GroupInitialRebalanceDelay time.Duration

	// Cluster, when set, runs the node as a member of that cluster
	// (cluster.toml): the __meta group on controller peers, a Raft group
	// per hosted partition on broker peers. Nil runs a single node.
	Cluster *config.Cluster
	// RaftListener, when set, is used instead of binding
	// BindAddr:raft_port in cluster mode.
	RaftListener net.Listener
	// Profiling serves Go's profiles under /debug/pprof/ on the HTTP side
	// of the Kafka port (CHRONIK_PPROF).
	Profiling bool
	// TransferTimeout bounds the hand-over of leaderships when Run's
	// context ends in cluster mode (default 5 s).
	TransferTimeout time.Duration
}

// replicaSet is the write path of either mode: replica.Manager on a single
// node, replica.RaftReplicas in a cluster.
type replicaSet interface {
	kafka.Replicas
	Open() error
	Run(ctx context.Context) error
}

// Broker is one running node.
type Broker struct {
	cfg      Config
	log      *slog.Logger
	ln       net.Listener
	meta     metadata.Service
	replicas replicaSet
	reg      *prometheus.Registry

	// Cluster mode only.
	mux     *raftnet.Mux
	ctrl    *controller.Controller
	rr      *replica.RaftReplicas
	admin   *adminapi.Service
	ready   atomic.Bool
	readyCh chan struct{}
	once    sync.Once
}

func (c *Config) setDefaults() {
	if c.Cluster != nil {
		self := c.Cluster.Self()
		c.NodeID = self.ID
		if c.KafkaPort == 0 {
			c.KafkaPort = self.KafkaPort()
		}
		if c.AdvertisedHost == "" {
			c.AdvertisedHost = self.Host()
		}
		if c.DefaultReplicationFactor <= 0 {
			c.DefaultReplicationFactor = int16(c.Cluster.ReplicationFactor)
		}
	}
	if c.NodeID == 0 {
		c.NodeID = 1
	}
	if c.TransferTimeout <= 0 {
		c.TransferTimeout = 5 * time.Second
	}
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	if c.KafkaPort == 0 {
		c.KafkaPort = 9092
	}
	if c.AdvertisedHost == "" {
		c.AdvertisedHost = c.BindAddr
		if c.BindAddr == "0.0.0.0" || c.BindAddr == "::" {
			c.AdvertisedHost = "localhost"
		}
	}
	if c.AdvertisedPort == 0 {
		c.AdvertisedPort = c.KafkaPort
	}
	if c.DefaultPartitions <= 0 {
		c.DefaultPartitions = 1
	}
	if c.DefaultReplicationFactor <= 0 {
		c.DefaultReplicationFactor = 1
	}
	if c.OffsetsPartitions <= 0 {
		c.OffsetsPartitions = 16
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	s := &c.Storage
	if s.SegmentBytes == 0 {
		s.SegmentBytes = 1 << 30
	}
	if s.SegmentMs == 0 {
		s.SegmentMs = 7 * 24 * 3600 * 1000
	}
	if s.RetentionMs == 0 {
		s.RetentionMs = 7 * 24 * 3600 * 1000
	}
	if s.RetentionBytes == 0 {
		s.RetentionBytes = -1
	}
	if s.IndexIntervalBytes == 0 {
		s.IndexIntervalBytes = 4096
	}
}

// New opens the data directory and binds the Kafka port.
func New(cfg Config) (*Broker, error) {
	cfg.setDefaults()
	b := &Broker{cfg: cfg, log: cfg.Logger.With("node_id", cfg.NodeID), reg: prometheus.NewRegistry(), readyCh: make(chan struct{})}
	b.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var err error
	if cfg.Cluster != nil {
		err = b.openCluster()
	} else {
		err = b.openSingle()
	}
	if err != nil {
		return nil, err
	}
	b.admin = b.newAdminService()
	b.ln = cfg.Listener
	if b.ln == nil {
		addr := net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.KafkaPort))
		if b.ln, err = net.Listen("tcp", addr); err != nil {
			b.closeMux()
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
	}
	return b, nil
}

// openSingle opens a single node's local metadata and replicas.
func (b *Broker) openSingle() error {
	cfg := b.cfg
	store, err := metadata.OpenLocalStore(filepath.Join(cfg.DataDir, "meta"), newClusterID())
	if err != nil {
		return fmt.Errorf("open metadata: %w", err)
	}
	b.meta = store
	b.replicas = replica.New(b.replicaConfig(1))
	if err := b.replicas.Open(); err != nil {
		return fmt.Errorf("open replicas: %w", err)
	}
	return nil
}

// replicaConfig is the replica manager's configuration of either mode.
func (b *Broker) replicaConfig(minISR int32) replica.Config {
	return replica.Config{
		Dir:            filepath.Join(b.cfg.DataDir, "topics"),
		NodeID:         b.cfg.NodeID,
		Meta:           b.meta,
		Logger:         b.cfg.Logger,
		RetentionCheck: b.cfg.RetentionCheck,
		Defaults: partition.Config{
			Storage:           b.cfg.Storage,
			MaxMessageBytes:   1048588,
			MinInsyncReplicas: minISR,
		},
	}
}

func newClusterID() string {
	var id [16]byte
	rand.Read(id[:])
	return base64.RawURLEncoding.EncodeToString(id[:])
}

// Addr is the Kafka listener's address.
func (b *Broker) Addr() net.Addr { return b.ln.Addr() }

// Ready is closed once the broker serves clients.
func (b *Broker) Ready() <-chan struct{} { return b.readyCh }

// Run serves until ctx ends, then stops accepting, answers in-flight
// requests, flushes and fsyncs every partition and returns.
func (b *Broker) Run(ctx context.Context) (err error) {
	tp, shutdownTracing, err := telemetry.Tracing(ctx, "chronik-server", b.cfg.Version)
	if err != nil {
		return err
	}
	defer shutdownTracing(context.Background())

	// Background loops outlive ctx until the listener has drained, so that
	// in-flight requests are answered; they stop last.
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	var bgErrs []error
	var bgMu sync.Mutex
	start := func(run func(context.Context) error) {
		bg.Add(1)
		go func() {
			defer bg.Done()
			if err := run(bgCtx); err != nil {
				bgMu.Lock()
				bgErrs = append(bgErrs, err)
				bgMu.Unlock()
			}
		}()
	}
	defer func() {
		stopBackground()
		bg.Wait()
		b.closeMux()
		err = errors.Join(append([]error{err}, bgErrs...)...)
	}()

	// Until the node serves Kafka, its port answers health probes and
	// metric scrapes (not ready yet) and holds Kafka connections.
	httpHandler := b.httpHandler()
	ln := b.ln
	stopHTTPOnly, err := kafka.ServeHTTPOnly(b.ln, httpHandler)
	if err != nil {
		b.log.Debug("no HTTP before ready", "err", err)
		stopHTTPOnly = func() net.Listener { return b.ln }
	}
	defer func() {
		if stopHTTPOnly != nil {
			stopHTTPOnly().Close()
		}
	}()

	ctrlDone := make(chan struct{}) // closed if the control plane stops
	if b.ctrl != nil {
		start(func(ctx context.Context) error {
			defer close(ctrlDone)
			if err := b.ctrl.Run(ctx); err != nil {
				return fmt.Errorf("control plane: %w", err)
			}
			return nil
		})
		if err := b.awaitCluster(ctx, ctrlDone); err != nil {
			if ctx.Err() != nil {
				return nil // stopped while joining
			}
			return err
		}
		if err := b.replicas.Open(); err != nil {
			return fmt.Errorf("open replicas: %w", err)
		}
	} else if err := b.register(ctx); err != nil {
		return err
	}
	start(b.replicas.Run)
	offsetsPartitions, err := b.ensureOffsetsTopic(ctx)
	if err != nil {
		return err
	}
	coord := group.New(group.Config{
		Logger:        b.log,
		Log:           kafka.NewGroupLog(b.replicas),
		NumPartitions: offsetsPartitions,
		TopicExists: func(topic string, p int32) bool {
			return b.meta.State().Partition(topic, p) != nil
		},
		InitialRebalanceDelay: b.cfg.GroupInitialRebalanceDelay,
	})
	start(coord.Run)
	start(func(ctx context.Context) error { return b.followOffsetsLeaders(ctx, coord, offsetsPartitions) })
	start(b.runAdmin)

	srv := kafka.NewServer(kafka.Config{
		Logger: b.log,
		Broker: &kafka.Broker{
			NodeID:                   b.cfg.NodeID,
			Meta:                     b.meta,
			Replicas:                 b.replicas,
			Groups:                   coord,
			Log:                      b.log,
			AutoCreateTopics:         b.cfg.AutoCreateTopics,
			DefaultPartitions:        b.cfg.DefaultPartitions,
			DefaultReplicationFactor: b.cfg.DefaultReplicationFactor,
			ElectedEpochs:            b.cfg.Cluster != nil,
			Assign:                   b.assign,
		},
		HTTP:            httpHandler,
		MaxRequestBytes: b.cfg.MaxRequestBytes,
		Registerer:      b.reg,
		Tracer:          tp.Tracer("chronik/kafka"),
	})
	ln = stopHTTPOnly()
	stopHTTPOnly = nil
	b.ready.Store(true)
	b.once.Do(func() { close(b.readyCh) })
	b.log.Info(fmt.Sprintf("Chronik server ready on %s (advertised: %s)", b.ln.Addr(),
		net.JoinHostPort(b.cfg.AdvertisedHost, strconv.Itoa(b.cfg.AdvertisedPort))))

	// In a cluster, leaderships move away before the listener closes, so
	// clients follow them while this node still answers.
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServing()
	go func() {
		select {
		case <-ctx.Done():
			b.handOff()
		case <-ctrlDone:
			b.log.Error("control plane stopped; shutting down")
		case <-serveCtx.Done():
		}
		stopServing()
	}()
	err = srv.Serve(serveCtx, ln)
	b.ready.Store(false)
	return err
}

// followOffsetsLeaders makes the group coordinator serve exactly the
// __consumer_offsets partitions this node leads: it loads a partition once
// its replica here becomes leader (and has applied its log) and unloads it
// when the leadership moves.
func (b *Broker) followOffsetsLeaders(ctx context.Context, coord *group.Coordinator, n int32) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	loaded := make([]bool, n)
	for {
		changed := b.meta.Changed()
		for p := range n {
			part := b.replicas.Partition(kafka.OffsetsTopic, p)
			lead := false
			if part != nil {
				lead, _ = b.replicas.IsLeader(part)
			}
			switch {
			case lead && !loaded[p]:
				if err := coord.Load(ctx, p); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					b.log.Warn("load consumer groups", "partition", p, "err", err)
					continue
				}
				loaded[p] = true
			case !lead && loaded[p]:
				coord.Unload(p)
				loaded[p] = false
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-tick.C:
		}
	}
}

// register records this node in the metadata with its advertised address.
func (b *Broker) register(ctx context.Context) error {
	want := metadata.Broker{ID: b.cfg.NodeID, Host: b.cfg.AdvertisedHost, Port: int32(b.cfg.AdvertisedPort), Alive: true}
	if cur := b.meta.State().Brokers[b.cfg.NodeID]; cur != nil && cur.Host == want.Host && cur.Port == want.Port && cur.Alive {
		return nil
	}
	if _, err := b.meta.Propose(ctx, &metadata.Command{RegisterBroker: &want}); err != nil {
		return fmt.Errorf("register broker: %w", err)
	}
	return nil
}

// placeable lists the live brokers that may take new replicas.
func (b *Broker) placeable(st *metadata.State) []assign.Broker {
	var brokers []assign.Broker
	for _, br := range st.LiveBrokers() {
		if !br.Decommissioning {
			brokers = append(brokers, assign.Broker{ID: br.ID, Rack: br.Rack, Draining: br.Draining})
		}
	}
	return brokers
}

// assign places new partitions over the live brokers with the cluster's
// placement rules, counting what they already hold.
func (b *Broker) assign(st *metadata.State, partitions, rf int) ([][]int32, error) {
	brokers := b.placeable(st)
	var load assign.Load
	for _, t := range st.Topics {
		for _, p := range t.Partitions {
			load.Add(p.Replicas)
		}
	}
	return assign.Assign(brokers, load, partitions, rf)
}

// ensureOffsetsTopic creates the internal committed-offsets topic when it
// is missing and returns its partition count (the existing topic's, so a
// changed setting never moves groups to other partitions). Its records are
// kept until the group coordinator's own checkpoints drop them, so time
// retention is off; small segments let those checkpoints free disk soon.
//
// In a cluster its replicas are placed over the broker peers of
// cluster.toml, registered yet or not, so that the topic does not depend
// on which nodes happened to start first; a replica whose node is not up
// yet joins its group when the node starts.
func (b *Broker) ensureOffsetsTopic(ctx context.Context) (int32, error) {
	st := b.meta.State()
	if st.Topics[kafka.OffsetsTopic] == nil {
		brokers, rf := b.placeable(st), 3
		if b.cfg.Cluster != nil {
			brokers, rf = nil, int(b.cfg.DefaultReplicationFactor)
			for _, p := range b.cfg.Cluster.Brokers() {
				brokers = append(brokers, assign.Broker{ID: p.ID, Rack: p.Rack})
			}
		}
		rf = min(rf, len(brokers))
		replicas, err := assign.Assign(brokers, assign.Load{}, int(b.cfg.OffsetsPartitions), rf)
		if err != nil {
			return 0, fmt.Errorf("create %s: %w", kafka.OffsetsTopic, err)
		}
		t := &metadata.Topic{Name: kafka.OffsetsTopic, Internal: true,
			Configs: map[string]string{"retention.ms": "-1", "cleanup.policy": "compact", "segment.bytes": "104857600"}}
		rand.Read(t.ID[:])
		for i, r := range replicas {
			t.Partitions = append(t.Partitions, metadata.Partition{ID: int32(i), Replicas: r, ISR: r, Leader: r[0]})
		}
		if _, err := b.meta.Propose(ctx, &metadata.Command{CreateTopic: t}); err != nil && !errors.Is(err, metadata.ErrTopicExists) {
			return 0, fmt.Errorf("create %s: %w", kafka.OffsetsTopic, err)
		}
	}
	if err := b.replicas.Await(ctx, kafka.OffsetsTopic); err != nil {
		return 0, err
	}
	return int32(len(b.meta.State().Topics[kafka.OffsetsTopic].Partitions)), nil
}
