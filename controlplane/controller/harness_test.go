package controller

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chronik-stream/chronik/controlplane/config"
	"github.com/chronik-stream/chronik/controlplane/metadata"
	"github.com/chronik-stream/chronik/controlplane/raftnet"
)

// peerSpec describes one node of a test cluster.
type peerSpec struct {
	id    int32
	roles []string // nil: both
}

// options tune a test cluster.
type options struct {
	// electionTimeout and heartbeatInterval are [raft]'s; zero means 1 s
	// and 50 ms, slower than the guide's 300/30 ms so that elections stay
	// settled on an overloaded test machine.
	electionTimeout   time.Duration
	heartbeatInterval time.Duration
	snapshotThreshold int
	snapshotInterval  time.Duration
	segmentSize       int           // raft-wal segment size, 0: default
	heartbeat         time.Duration // broker heartbeat interval
}

// cluster is an in-process cluster: one raftnet Mux on 127.0.0.1 and one
// Controller per node, each with its own data directory.
type cluster struct {
	t     *testing.T
	opts  options
	specs []peerSpec
	addrs map[int32]string // raft addresses, fixed for the test
	dirs  map[int32]string
	logs  *logSink
	nodes map[int32]*node
}

// node is one running (or stopped) member of a cluster.
type node struct {
	id   int32
	mux  *raftnet.Mux
	c    *Controller
	reg  *prometheus.Registry
	stop context.CancelFunc
	done chan error
}

func newCluster(t *testing.T, opts options, specs ...peerSpec) *cluster {
	t.Helper()
	if opts.heartbeat == 0 {
		opts.heartbeat = 100 * time.Millisecond
	}
	if opts.electionTimeout == 0 {
		opts.electionTimeout, opts.heartbeatInterval = time.Second, 50*time.Millisecond
	}
	cl := &cluster{
		t: t, opts: opts, specs: specs,
		addrs: map[int32]string{}, dirs: map[int32]string{},
		logs: newLogSink(t), nodes: map[int32]*node{},
	}
	lns := map[int32]net.Listener{}
	for _, s := range specs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[s.id] = ln
		cl.addrs[s.id] = ln.Addr().String()
		cl.dirs[s.id] = t.TempDir()
	}
	t.Cleanup(cl.stopAll)
	for _, s := range specs {
		cl.start(s.id, lns[s.id])
	}
	return cl
}

// addPeer adds a node to cluster.toml (as rendered from now on) without
// starting it, and returns its listener.
func (cl *cluster) addPeer(spec peerSpec) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cl.t.Fatal(err)
	}
	cl.specs = append(cl.specs, spec)
	cl.addrs[spec.id] = ln.Addr().String()
	cl.dirs[spec.id] = cl.t.TempDir()
	return ln
}

// clusterFile renders cluster.toml for node id.
func (cl *cluster) clusterFile(id int32) string {
	var b strings.Builder
	brokers := 0
	for _, s := range cl.specs {
		if s.roles == nil || slices.Contains(s.roles, "broker") {
			brokers++
		}
	}
	fmt.Fprintf(&b, "enabled = true\nnode_id = %d\nreplication_factor = %d\nmin_insync_replicas = 1\n", id, min(3, brokers))
	fmt.Fprintf(&b, "[raft]\nelection_timeout_ms = %d\nheartbeat_interval_ms = %d\n",
		cl.opts.electionTimeout.Milliseconds(), cl.opts.heartbeatInterval.Milliseconds())
	if cl.opts.snapshotThreshold > 0 {
		fmt.Fprintf(&b, "snapshot_threshold = %d\n", cl.opts.snapshotThreshold)
	}
	fmt.Fprintf(&b, "[isr]\ncheck_interval_ms = %d\n", cl.opts.heartbeat.Milliseconds())
	for _, s := range cl.specs {
		_, port, _ := net.SplitHostPort(cl.addrs[s.id])
		fmt.Fprintf(&b, "[[peers]]\nid = %d\naddr = \"127.0.0.1:%d\"\nraft_port = %s\n", s.id, 19000+s.id, port)
		if s.roles != nil {
			fmt.Fprintf(&b, "roles = [\"%s\"]\n", strings.Join(s.roles, `", "`))
		}
	}
	return b.String()
}

// start runs node id, on ln or on a fresh listener bound to its address.
func (cl *cluster) start(id int32, ln net.Listener) *node {
	t := cl.t
	t.Helper()
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cl.addrs[id]); err != nil {
			t.Fatalf("relisten node %d: %v", id, err)
		}
	}
	cfg, err := config.Parse(fmt.Sprintf("node%d-cluster.toml", id), []byte(cl.clusterFile(id)))
	if err != nil {
		t.Fatalf("cluster file: %v", err)
	}
	logger := cl.logs.logger(fmt.Sprintf("n%d", id))
	mux, err := raftnet.New(raftnet.Config{Listener: ln, LocalAddr: cl.addrs[id], Logger: logger, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	c, err := New(Config{
		NodeID: id, DataDir: cl.dirs[id], Cluster: cfg, Mux: mux, Logger: logger, Registerer: reg,
		SnapshotInterval: cl.opts.snapshotInterval,
	})
	if err != nil {
		t.Fatal(err)
	}
	if cl.opts.segmentSize > 0 {
		c.segSize = cl.opts.segmentSize
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{id: id, mux: mux, c: c, reg: reg, stop: cancel, done: make(chan error, 1)}
	go func() { n.done <- c.Run(ctx) }()
	cl.nodes[id] = n
	return n
}

// kill stops node id's controller and closes its raft port, as a crash
// would (the data directory stays).
func (cl *cluster) kill(id int32) {
	cl.t.Helper()
	n := cl.nodes[id]
	if n == nil {
		return
	}
	delete(cl.nodes, id)
	n.stop()
	select {
	case err := <-n.done:
		if err != nil {
			cl.t.Errorf("node %d Run: %v", id, err)
		}
	case <-time.After(20 * time.Second):
		buf := make([]byte, 8<<20)
		cl.t.Logf("goroutines:\n%s", buf[:runtime.Stack(buf, true)])
		cl.t.Fatalf("node %d Run did not return", id)
	}
	if err := n.mux.Close(); err != nil {
		cl.t.Errorf("close mux of node %d: %v", id, err)
	}
	cl.t.Logf("node %d stopped", id)
}

func (cl *cluster) stopAll() {
	ids := make([]int32, 0, len(cl.nodes))
	for id := range cl.nodes {
		ids = append(ids, id)
	}
	for _, id := range ids {
		cl.kill(id)
	}
}

// waitReady waits for Ready on the given nodes (all running ones if none).
func (cl *cluster) waitReady(ids ...int32) {
	cl.t.Helper()
	if len(ids) == 0 {
		ids = cl.running()
	}
	deadline := time.After(15 * time.Second)
	for _, id := range ids {
		select {
		case <-cl.nodes[id].c.Ready():
		case <-deadline:
			cl.t.Fatalf("node %d not ready", id)
		}
	}
}

func (cl *cluster) running() []int32 {
	var ids []int32
	for id := range cl.nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// leader waits until every running controller names the same leader, one
// of them, and returns it.
func (cl *cluster) leader() int32 {
	cl.t.Helper()
	var id int32
	eventually(cl.t, 10*time.Second, func() error {
		id = 0
		for _, nid := range cl.running() {
			n := cl.nodes[nid]
			if !n.c.isCtl {
				continue
			}
			l := n.c.LeaderID()
			if l == 0 || (id != 0 && l != id) {
				return fmt.Errorf("node %d sees leader %d, others %d", nid, l, id)
			}
			id = l
		}
		if ln := cl.nodes[id]; ln == nil || !ln.c.IsLeader() {
			return fmt.Errorf("leader %d is not running as leader", id)
		}
		return nil
	})
	return id
}

// follower returns a running controller that is not the leader.
func (cl *cluster) follower(leader int32) int32 {
	for _, id := range cl.running() {
		if id != leader && cl.nodes[id].c.isCtl {
			return id
		}
	}
	cl.t.Fatal("no follower")
	return 0
}

// converged waits until all running nodes hold identical images.
func (cl *cluster) converged() *metadata.State {
	cl.t.Helper()
	var st *metadata.State
	eventually(cl.t, 10*time.Second, func() error {
		st = nil
		for _, id := range cl.running() {
			s := cl.nodes[id].c.Service().State()
			if st == nil {
				st = s
				continue
			}
			if !reflect.DeepEqual(st, s) {
				return fmt.Errorf("node %d at index %d differs from image at %d", id, s.Index, st.Index)
			}
		}
		return nil
	})
	return st
}

func (cl *cluster) propose(id int32, cmd *metadata.Command, d time.Duration) (metadata.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return cl.nodes[id].c.Service().Propose(ctx, cmd)
}

// gauge reads one metric of node id, or -1 if it is not exported.
func (cl *cluster) gauge(id int32, name string) float64 {
	mfs, err := cl.nodes[id].reg.Gather()
	if err != nil {
		cl.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// eventually retries f until it succeeds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func topicCmd(name string, partitions int) *metadata.Command {
	t := &metadata.Topic{Name: name}
	copy(t.ID[:], name)
	for i := range partitions {
		t.Partitions = append(t.Partitions, metadata.Partition{ID: int32(i), Replicas: []int32{1, 2, 3}, Leader: 1, ISR: []int32{1, 2, 3}})
	}
	return &metadata.Command{CreateTopic: t}
}

func allocCmd(n int64) *metadata.Command { return &metadata.Command{AllocProducerIDs: &n} }

// logSink collects every node's records for assertions and writes them to
// t.Log until the test ends.
type logSink struct {
	t    *testing.T
	mu   sync.Mutex
	recs []string // "prefix: message"
	done atomic.Bool
}

func newLogSink(t *testing.T) *logSink {
	s := &logSink{t: t}
	t.Cleanup(func() { s.done.Store(true) }) // runs last: registered first
	return s
}

func (s *logSink) logger(prefix string) *slog.Logger {
	w := writerFunc(func(p []byte) (int, error) {
		if !s.done.Load() {
			s.t.Log(prefix + " " + strings.TrimRight(string(p), "\n"))
		}
		return len(p), nil
	})
	return slog.New(&captureHandler{sink: s, prefix: prefix, inner: slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})})
}

// has reports whether node prefix logged msg exactly.
func (s *logSink) has(prefix, msg string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.recs, prefix+": "+msg)
}

func (s *logSink) count(prefix, msg string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.recs {
		if r == prefix+": "+msg {
			n++
		}
	}
	return n
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

type captureHandler struct {
	sink   *logSink
	prefix string
	inner  slog.Handler
}

func (h *captureHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *captureHandler) Handle(ctx context.Context, r slog.Record) error {
	h.sink.mu.Lock()
	h.sink.recs = append(h.sink.recs, h.prefix+": "+r.Message)
	h.sink.mu.Unlock()
	return h.inner.Handle(ctx, r)
}

func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &captureHandler{sink: h.sink, prefix: h.prefix, inner: h.inner.WithAttrs(as)}
}

func (h *captureHandler) WithGroup(name string) slog.Handler {
	return &captureHandler{sink: h.sink, prefix: h.prefix, inner: h.inner.WithGroup(name)}
}
