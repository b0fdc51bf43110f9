package raftnet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// tLogWriter forwards log lines to t.Log until the test ends.
type tLogWriter struct {
	mu     sync.Mutex
	t      testing.TB
	prefix string
	done   bool
}

func newTLogWriter(t testing.TB, prefix string) *tLogWriter {
	w := &tLogWriter{t: t, prefix: prefix}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
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
	return slog.New(slog.NewTextHandler(newTLogWriter(t, prefix), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func raftLogger(t testing.TB, prefix string, level hclog.Level) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: prefix, Output: newTLogWriter(t, ""), Level: level})
}

// eventually polls fn until it returns nil or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkGoroutines fails the test if, once it is cleaned up, more goroutines
// run than before it started.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Errorf("goroutines leaked: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:n])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

type muxOpt func(*Config)

// newTestMux starts a Mux on addr ("127.0.0.1:0" for any port). It is
// closed when the test ends.
func newTestMux(t testing.TB, addr string, opts ...muxOpt) *Mux {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	cfg := Config{
		Listener:    ln,
		Logger:      testLogger(t, ln.Addr().String()+" "),
		DialTimeout: time.Second,
		RPCTimeout:  2 * time.Second,
		// The pipeline is what most of this package's tests exercise.
		PipelineDepth: 2,
	}
	for _, o := range opts {
		o(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("new mux: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// testFSM records applied entries and can snapshot and restore them.
type testFSM struct {
	mu       sync.Mutex
	entries  [][]byte
	seen     map[uint64]bool
	restores int
}

// Apply records an entry unless its sequence number (the first 8 bytes)
// was applied before: applyN may retry an entry that did commit.
func (f *testFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(l.Data) >= 8 {
		seq := binary.BigEndian.Uint64(l.Data)
		if f.seen == nil {
			f.seen = make(map[uint64]bool)
		}
		if f.seen[seq] {
			return len(f.entries)
		}
		f.seen[seq] = true
	}
	f.entries = append(f.entries, append([]byte(nil), l.Data...))
	return len(f.entries)
}

func (f *testFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &testSnapshot{entries: append([][]byte(nil), f.entries...)}, nil
}

func (f *testFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var entries [][]byte
	var lenBuf [4]byte
	for {
		if _, err := io.ReadFull(rc, lenBuf[:]); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return fmt.Errorf("read snapshot entry length: %w", err)
		}
		e := make([]byte, binary.BigEndian.Uint32(lenBuf[:]))
		if _, err := io.ReadFull(rc, e); err != nil {
			return fmt.Errorf("read snapshot entry: %w", err)
		}
		entries = append(entries, e)
	}
	f.mu.Lock()
	f.entries = entries
	f.seen = make(map[uint64]bool)
	for _, e := range entries {
		if len(e) >= 8 {
			f.seen[binary.BigEndian.Uint64(e)] = true
		}
	}
	f.restores++
	f.mu.Unlock()
	return nil
}

func (f *testFSM) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.entries)
}

func (f *testFSM) restored() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restores
}

func (f *testFSM) snapshotEntries() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.entries...)
}

type testSnapshot struct{ entries [][]byte }

func (s *testSnapshot) Persist(sink raft.SnapshotSink) error {
	var lenBuf [4]byte
	for _, e := range s.entries {
		binary.BigEndian.PutUint32(lenBuf[:], uint32(len(e)))
		if _, err := sink.Write(lenBuf[:]); err != nil {
			_ = sink.Cancel()
			return err
		}
		if _, err := sink.Write(e); err != nil {
			_ = sink.Cancel()
			return err
		}
	}
	return sink.Close()
}

func (s *testSnapshot) Release() {}

// node is one Raft group member on a Mux.
type node struct {
	id    raft.ServerID
	raft  *raft.Raft
	fsm   *testFSM
	logs  *raft.InmemStore
	snaps raft.SnapshotStore
}

// fastRaftConfig returns timeouts suited to a few groups on loopback.
func fastRaftConfig(id raft.ServerID) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = id
	c.HeartbeatTimeout = 300 * time.Millisecond
	c.ElectionTimeout = 300 * time.Millisecond
	c.LeaderLeaseTimeout = 300 * time.Millisecond
	c.CommitTimeout = 20 * time.Millisecond
	return c
}

type raftOpts struct {
	config    func(*raft.Config)
	logLevel  hclog.Level
	bootstrap bool
	stores    *node // reuse the stores of a crashed node
}

// startNode starts a Raft member of group on m with the given peers.
func startNode(t testing.TB, m *Mux, group string, id raft.ServerID, peers []raft.Server, o raftOpts) *node {
	t.Helper()
	conf := fastRaftConfig(id)
	if o.config != nil {
		o.config(conf)
	}
	if o.logLevel == hclog.NoLevel {
		o.logLevel = hclog.Warn
	}
	conf.Logger = raftLogger(t, fmt.Sprintf("%s/%s", group, id), o.logLevel)
	n := &node{id: id, fsm: &testFSM{}, logs: raft.NewInmemStore()}
	if o.stores != nil {
		n.logs, n.snaps = o.stores.logs, o.stores.snaps
	} else {
		// Files, not InmemSnapshotStore: that one races between writing a
		// snapshot and opening the latest for a follower.
		snaps, err := raft.NewFileSnapshotStoreWithLogger(t.TempDir(), 2, conf.Logger)
		if err != nil {
			t.Fatalf("snapshot store: %v", err)
		}
		n.snaps = snaps
	}
	trans := m.Transport(group)
	if o.bootstrap {
		if err := raft.BootstrapCluster(conf, n.logs, n.logs, n.snaps, trans, raft.Configuration{Servers: peers}); err != nil {
			t.Fatalf("bootstrap %s/%s: %v", group, id, err)
		}
	}
	r, err := raft.NewRaft(conf, n.fsm, n.logs, n.logs, n.snaps, trans)
	if err != nil {
		t.Fatalf("new raft %s/%s: %v", group, id, err)
	}
	n.raft = r
	t.Cleanup(n.shutdown)
	return n
}

func (n *node) shutdown() {
	if n.raft != nil {
		_ = n.raft.Shutdown().Error()
	}
}

// servers builds a Raft configuration of the muxes, ids "n0", "n1", ...
func servers(muxes []*Mux) []raft.Server {
	var out []raft.Server
	for i, m := range muxes {
		out = append(out, raft.Server{
			ID:      raft.ServerID(fmt.Sprintf("n%d", i)),
			Address: raft.ServerAddress(m.LocalAddr()),
		})
	}
	return out
}

// waitLeader waits until exactly one of nodes is leader and all others
// agree on it, and returns its index.
func waitLeader(t testing.TB, nodes []*node, timeout time.Duration) int {
	t.Helper()
	leader := -1
	eventually(t, timeout, func() error {
		leader = -1
		for i, n := range nodes {
			if n == nil {
				continue
			}
			if n.raft.State() == raft.Leader {
				if leader >= 0 {
					return errors.New("two leaders")
				}
				leader = i
			}
		}
		if leader < 0 {
			return errors.New("no leader")
		}
		addr, _ := nodes[leader].raft.LeaderWithID()
		for i, n := range nodes {
			if n == nil || i == leader {
				continue
			}
			if a, _ := n.raft.LeaderWithID(); a != addr {
				return fmt.Errorf("node %d sees leader %q, not %q", i, a, addr)
			}
		}
		return nil
	})
	return leader
}

// applyN applies entries from..from+n-1 (each data of size bytes, starting
// with its sequence number) through whichever node leads, retrying entries
// whose outcome a leadership change left open. The FSM drops duplicates.
func applyN(t testing.TB, nodes []*node, from, n, size int) {
	t.Helper()
	pending := make([]int, 0, n)
	for i := from; i < from+n; i++ {
		pending = append(pending, i)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d entries not applied within 30s", len(pending))
		}
		r := nodes[waitLeader(t, nodes, 20*time.Second)].raft
		futures := make([]raft.ApplyFuture, len(pending))
		for i, seq := range pending {
			futures[i] = r.Apply(entryData(seq, size), 5*time.Second)
		}
		var failed []int
		for i, f := range futures {
			err := f.Error()
			switch {
			case err == nil:
			case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrNotLeader),
				errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrLeadershipTransferInProgress):
				failed = append(failed, pending[i])
			default:
				t.Fatalf("apply entry %d: %v", pending[i], err)
			}
		}
		if len(failed) > 0 {
			t.Logf("retrying %d entries after a leadership change", len(failed))
		}
		pending = failed
	}
}

// applyOne applies entry seq through whichever node leads, retrying across
// leadership changes until timeout. It may run outside the test goroutine.
func applyOne(nodes []*node, seq, size int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		err = errors.New("no leader")
		for _, n := range nodes {
			if n.raft.State() == raft.Leader {
				err = n.raft.Apply(entryData(seq, size), 5*time.Second).Error()
				break
			}
		}
		if err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("apply entry %d: %w", seq, err)
}

func entryData(i, size int) []byte {
	b := bytes.Repeat([]byte{byte(i)}, max(size, 8))
	binary.BigEndian.PutUint64(b, uint64(i))
	return b
}

// waitFSMs waits until every FSM holds want entries and they are equal.
func waitFSMs(t testing.TB, nodes []*node, want int, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, func() error {
		var ref [][]byte
		for i, n := range nodes {
			if n == nil {
				continue
			}
			got := n.fsm.snapshotEntries()
			if len(got) != want {
				return fmt.Errorf("node %d applied %d of %d entries", i, len(got), want)
			}
			if ref == nil {
				ref = got
				continue
			}
			for j := range got {
				if !bytes.Equal(got[j], ref[j]) {
					return fmt.Errorf("node %d entry %d differs", i, j)
				}
			}
		}
		return nil
	})
}
