package replica

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/controlplane/config"
	"github.com/chronik-stream/chronik/controlplane/metadata"
	"github.com/chronik-stream/chronik/controlplane/raftnet"
	"github.com/chronik-stream/chronik/dataplane/internal/batch"
	"github.com/chronik-stream/chronik/dataplane/internal/partition"
)

// tLogWriter forwards log lines to t.Log until the test ends.
type tLogWriter struct {
	mu     sync.Mutex
	t      testing.TB
	prefix string
	done   bool
}

func (w *tLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(w.prefix + strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(t testing.TB, prefix string) *slog.Logger {
	w := &tLogWriter{t: t, prefix: prefix}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: testLogLevel}))
}

// eventually polls cond until it returns nil or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testTimings are fast partition-group timings for tests.
type testTimings struct {
	heartbeat, lease                time.Duration
	snapshotThreshold, trailingLogs uint64
	isrMaxLag, isrCheck             time.Duration
	walSegment                      int
	// probe is the failure detector's interval; 0 leaves it off, so that
	// the other tests exercise Raft's own timeouts.
	probe time.Duration
}

func fastTimings() testTimings {
	return testTimings{
		heartbeat: time.Second, lease: time.Second,
		snapshotThreshold: 100000, trailingLogs: 1024,
		isrMaxLag: 2 * time.Second, isrCheck: 50 * time.Millisecond,
	}
}

// detectorTimings make a follower alone wait at least 4 s before it
// campaigns, while the failure detector probes every 50 ms: an election
// well under 4 s is the detector's doing.
func detectorTimings() testTimings {
	tm := fastTimings()
	tm.heartbeat, tm.lease, tm.probe = 4*time.Second, 4*time.Second, 50*time.Millisecond
	return tm
}

// testNode is one broker: a mux on its own port and a RaftReplicas.
type testNode struct {
	id     int32
	dir    string
	addr   string
	mux    *raftnet.Mux
	rr     *RaftReplicas
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// testCluster is N brokers sharing one in-process metadata store.
type testCluster struct {
	t       testing.TB
	meta    *metadata.LocalStore
	cluster *config.Cluster
	timings testTimings
	nodes   map[int32]*testNode
}

func newTestCluster(t testing.TB, n int, tm testTimings) *testCluster {
	t.Helper()
	root := t.TempDir()
	meta, err := metadata.OpenLocalStore(filepath.Join(root, "meta"), "test-cluster")
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, meta: meta, timings: tm, nodes: map[int32]*testNode{},
		cluster: &config.Cluster{Enabled: true, NodeID: 1, ReplicationFactor: n, MinInsyncReplicas: 1}}
	listeners := map[int32]net.Listener{}
	for i := 1; i <= n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		id := int32(i)
		listeners[id] = ln
		port := ln.Addr().(*net.TCPAddr).Port
		c.cluster.Peers = append(c.cluster.Peers, config.Peer{
			ID: id, Addr: "127.0.0.1:" + strconv.Itoa(9000+i), RaftPort: port,
			Roles: []config.Role{config.RoleBroker, config.RoleController},
		})
		c.nodes[id] = &testNode{id: id, dir: filepath.Join(root, fmt.Sprint("node", i)), addr: ln.Addr().String()}
	}
	t.Cleanup(c.stopAll)
	for id, ln := range listeners {
		c.start(id, ln)
	}
	return c
}

// start runs node id, on ln or on a new listener at its address.
func (c *testCluster) start(id int32, ln net.Listener) {
	t := c.t
	t.Helper()
	n := c.nodes[id]
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", n.addr); err != nil {
			t.Fatalf("listen again on %s: %v", n.addr, err)
		}
	}
	lg := testLogger(t, fmt.Sprintf("node%d: ", id))
	mux, err := raftnet.New(raftnet.Config{Listener: ln, LocalAddr: n.addr, Logger: lg, DialTimeout: time.Second, RPCTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cl := *c.cluster
	cl.NodeID = id
	n.reg = prometheus.NewRegistry()
	tm := c.timings
	rr, err := NewRaftReplicas(RaftConfig{
		Config: Config{
			Dir: n.dir, NodeID: id, Meta: c.meta, Logger: lg,
			Defaults: partition.Config{MaxMessageBytes: 1 << 20, MinInsyncReplicas: 1},
		},
		Mux: mux, Cluster: &cl, Registerer: n.reg,
		HeartbeatTimeout: tm.heartbeat, ElectionTimeout: tm.heartbeat, LeaderLeaseTimeout: tm.lease,
		CommitTimeout: 20 * time.Millisecond, SnapshotThreshold: tm.snapshotThreshold,
		SnapshotInterval: 50 * time.Millisecond, TrailingLogs: tm.trailingLogs,
		ISRMaxLag: tm.isrMaxLag, ISRCheckInterval: tm.isrCheck,
		RPCTimeout: 2 * time.Second, WALSegmentSize: tm.walSegment,
		FailureProbeInterval: cmp.Or(tm.probe, -1),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rr.Open(); err != nil {
		t.Fatalf("open node %d: %v", id, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.mux, n.rr, n.cancel, n.done = mux, rr, cancel, make(chan error, 1)
	go func() { n.done <- rr.Run(ctx) }()
}

// stop shuts node id down: its groups, its replicas, then its mux.
func (c *testCluster) stop(id int32) {
	n := c.nodes[id]
	if n.rr == nil {
		return
	}
	n.cancel()
	if err := <-n.done; err != nil {
		c.t.Errorf("node %d stopped with: %v", id, err)
	}
	n.mux.Close()
	n.rr, n.mux = nil, nil
}

func (c *testCluster) stopAll() {
	var wg sync.WaitGroup
	for id := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.stop(id)
		}()
	}
	wg.Wait()
}

func (c *testCluster) restart(id int32) {
	c.stop(id)
	c.start(id, nil)
}

// createTopic creates topic with the given partition count over every
// node (each partition led first by a different node) and waits until
// every replica is open.
func (c *testCluster) createTopic(name string, partitions int, configs map[string]string) {
	c.t.Helper()
	ids := c.ids()
	var assignment [][]int32
	for p := range partitions {
		var reps []int32
		for i := range ids {
			reps = append(reps, ids[(p+i)%len(ids)])
		}
		assignment = append(assignment, reps)
	}
	c.createTopicOn(name, assignment, configs)
}

// createTopicOn creates topic with the given replica list per partition.
func (c *testCluster) createTopicOn(name string, assignment [][]int32, configs map[string]string) {
	c.t.Helper()
	top := &metadata.Topic{Name: name, Configs: configs}
	copy(top.ID[:], name)
	for p, reps := range assignment {
		top.Partitions = append(top.Partitions, metadata.Partition{ID: int32(p), Replicas: reps, Leader: reps[0], ISR: slices.Clone(reps)})
	}
	if _, err := c.meta.Propose(context.Background(), &metadata.Command{CreateTopic: top}); err != nil {
		c.t.Fatal(err)
	}
	for _, n := range c.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := n.rr.Await(ctx, name); err != nil {
			c.t.Fatalf("node %d: await %s: %v", n.id, name, err)
		}
		cancel()
	}
}

func (c *testCluster) ids() []int32 {
	var ids []int32
	for id := range c.nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (c *testCluster) running() []*testNode {
	var out []*testNode
	for _, id := range c.ids() {
		if n := c.nodes[id]; n.rr != nil {
			out = append(out, n)
		}
	}
	return out
}

// leader waits until exactly one running node serves as leader of
// topic/part and returns it with its epoch.
func (c *testCluster) leader(topic string, part int32, timeout time.Duration) (*testNode, int32) {
	c.t.Helper()
	var ln *testNode
	var epoch int32
	eventually(c.t, timeout, fmt.Sprintf("leader of %s/%d", topic, part), func() error {
		ln = nil
		for _, n := range c.running() {
			p := n.rr.Partition(topic, part)
			if p == nil {
				continue
			}
			if ok, e := n.rr.IsLeader(p); ok {
				if ln != nil {
					return fmt.Errorf("nodes %d and %d both lead", ln.id, n.id)
				}
				ln, epoch = n, e
			}
		}
		if ln == nil {
			return errors.New("no leader")
		}
		return nil
	})
	return ln, epoch
}

// produce sends one batch through node n's write path and waits for it.
func produce(n *testNode, topic string, part int32, b []byte, acks int16, timeout time.Duration) (partition.AppendResult, error) {
	p := n.rr.Partition(topic, part)
	if p == nil {
		return partition.AppendResult{}, fmt.Errorf("node %d does not host %s/%d", n.id, topic, part)
	}
	if err := p.Validate(b); err != nil {
		return partition.AppendResult{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	w, err := n.rr.Produce(ctx, p, b, acks)
	if err != nil {
		return partition.AppendResult{}, err
	}
	return w(ctx)
}

// produceRetrying produces through whichever node leads, retrying on
// leadership errors as a Kafka client does, until timeout.
func (c *testCluster) produceRetrying(topic string, part int32, b []byte) partition.AppendResult {
	c.t.Helper()
	res, err := c.tryProduce(topic, part, b, 20*time.Second)
	if err != nil {
		c.t.Fatal(err)
	}
	return res
}

// tryProduce is produceRetrying for any goroutine: it returns the last
// error once timeout passes.
func (c *testCluster) tryProduce(topic string, part int32, b []byte, timeout time.Duration) (partition.AppendResult, error) {
	deadline := time.Now().Add(timeout)
	for {
		err := errors.New("no leader")
		for _, n := range c.running() {
			p := n.rr.Partition(topic, part)
			if p == nil {
				continue
			}
			if ok, _ := n.rr.IsLeader(p); !ok {
				continue
			}
			var res partition.AppendResult
			if res, err = produce(n, topic, part, b, -1, 5*time.Second); err == nil {
				return res, nil
			}
			break
		}
		if time.Now().After(deadline) {
			return partition.AppendResult{}, fmt.Errorf("produce to %s/%d: %w", topic, part, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// makeBatch builds a valid v2 batch of n records. pid < 0 makes a
// non-idempotent batch.
func makeBatch(n int, tag string, pid int64, epoch int16, seq int32) []byte {
	return makeSizedBatch(n, tag, 0, pid, epoch, seq)
}

// makeSizedBatch is makeBatch with values padded to valueBytes.
func makeSizedBatch(n int, tag string, valueBytes int, pid int64, epoch int16, seq int32) []byte {
	var recs []byte
	ts := time.Now().UnixMilli()
	for i := range n {
		v := fmt.Appendf(nil, "%s/%d", tag, i)
		for len(v) < valueBytes {
			v = append(v, byte('a'+len(v)%26))
		}
		r := kmsg.Record{TimestampDelta64: int64(i), OffsetDelta: int32(i), Value: v}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		recs = r.AppendTo(recs)
	}
	if pid < 0 {
		epoch, seq = -1, -1
	}
	rb := kmsg.RecordBatch{
		Length: int32(batch.HeaderSize - batch.LogOverhead + len(recs)), Magic: batch.Magic,
		LastOffsetDelta: int32(n - 1), FirstTimestamp: ts, MaxTimestamp: ts + int64(n-1),
		ProducerID: pid, ProducerEpoch: epoch, FirstSequence: seq, NumRecords: int32(n), Records: recs,
	}
	b := rb.AppendTo(nil)
	batch.SetCRC(b)
	return b
}

// logBytes reads a replica's whole log, up to its log end.
func logBytes(t testing.TB, p *partition.Partition) []byte {
	t.Helper()
	var out []byte
	for off := p.LogStartOffset(); off < p.LogEndOffset(); {
		c, err := p.Read(off, 1<<20)
		if err != nil {
			t.Fatalf("read %s/%d at %d: %v", p.Topic, p.Index, off, err)
		}
		b, err := c.ReadAll()
		c.Release()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			t.Fatalf("read %s/%d at %d: nothing below the high watermark %d (log end %d)", p.Topic, p.Index, off, p.HighWatermark(), p.LogEndOffset())
		}
		out = append(out, b...)
		off = c.NextOffset
	}
	return out
}

// segmentFiles returns the content of a partition directory's .log files.
func segmentFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(n)] = b
	}
	return out
}

// awaitIdentical waits until every running replica of topic/part has the
// same log end and then checks their logs are byte-identical, through
// reads and on disk. It returns the log's bytes.
func (c *testCluster) awaitIdentical(topic string, part int32, wantEnd int64) []byte {
	c.t.Helper()
	var nodes []*testNode
	for _, n := range c.running() {
		if slices.Contains(c.meta.State().Partition(topic, part).Replicas, n.id) {
			nodes = append(nodes, n)
		}
	}
	eventually(c.t, 20*time.Second, "replicas converge", func() error {
		for _, n := range nodes {
			p := n.rr.Partition(topic, part)
			if p == nil {
				return fmt.Errorf("node %d has no replica", n.id)
			}
			if p.LogEndOffset() != wantEnd || p.HighWatermark() < wantEnd {
				return fmt.Errorf("node %d: log end %d, high watermark %d, want %d", n.id, p.LogEndOffset(), p.HighWatermark(), wantEnd)
			}
		}
		return nil
	})
	var want []byte
	var wantFiles map[string][]byte
	for i, n := range nodes {
		p := n.rr.Partition(topic, part)
		got := logBytes(c.t, p)
		files := segmentFiles(c.t, filepath.Join(n.dir, fmt.Sprintf("%s-%d", topic, part)))
		if i == 0 {
			want, wantFiles = got, files
			continue
		}
		if !bytes.Equal(got, want) {
			c.t.Fatalf("node %d: log of %d bytes differs from node %d's %d bytes", n.id, len(got), nodes[0].id, len(want))
		}
		if len(files) != len(wantFiles) {
			c.t.Fatalf("node %d: %d segment files, node %d has %d", n.id, len(files), nodes[0].id, len(wantFiles))
		}
		for name, b := range wantFiles {
			if !bytes.Equal(files[name], b) {
				c.t.Fatalf("node %d: segment %s differs from node %d's", n.id, name, nodes[0].id)
			}
		}
	}
	return want
}

// records counts the records of a log and returns their values.
func recordValues(t testing.TB, log []byte) []string {
	t.Helper()
	var vals []string
	it := batch.NewIter(log)
	for b, ok := it.Next(); ok; b, ok = it.Next() {
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b); err != nil {
			t.Fatal(err)
		}
		recs := rb.Records
		for range rb.NumRecords {
			var r kmsg.Record
			if err := r.ReadFrom(recs); err != nil {
				t.Fatal(err)
			}
			vals = append(vals, string(r.Value))
			recs = recs[int(r.Length)+varintLen(int64(r.Length)):]
		}
	}
	return vals
}

func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// gauge reads one partition series of a node's metrics.
func gauge(t testing.TB, n *testNode, name, topic string, part int32) float64 {
	t.Helper()
	mfs, err := n.reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics of node %d: %v", n.id, err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["topic"] == topic && labels["partition"] == strconv.Itoa(int(part)) {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("node %d has no %s{topic=%q,partition=\"%d\"}", n.id, name, topic, part)
	return 0
}

// testLogLevel is Info, or Debug with CHRONIK_TEST_DEBUG set.
var testLogLevel = func() slog.Level {
	if os.Getenv("CHRONIK_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}()
