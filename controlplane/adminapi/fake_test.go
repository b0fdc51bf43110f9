package adminapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronik-stream/chronik/controlplane/assign"
	"github.com/chronik-stream/chronik/controlplane/config"
	"github.com/chronik-stream/chronik/controlplane/metadata"
	"github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1/adminv1connect"
)

// fakeCluster simulates the nodes a Service runs on: the metadata image is
// a real metadata.LocalStore in a temporary directory, and the Raft groups
// are membership lists that the fake operations change the way the real
// ones would (a transfer records the new leader with the next epoch, an
// added replica is listed as an extra one, a removal drops the member from
// the replicas and the ISR). After every change it checks that no
// partition group has fewer members than its replication factor, that the
// metadata lists at most one extra replica, and that the recorded replicas
// and leader are members.
type fakeCluster struct {
	t     testing.TB
	store *metadata.LocalStore
	wg    sync.WaitGroup // delayed transfers
	stop  chan struct{}

	mu         sync.Mutex
	peers      []Peer
	meta       MetaStatus
	addrs      map[int32]string // admin (Kafka port) address of each node's Service
	members    map[assign.TopicPartition][]int32
	rf         map[assign.TopicPartition]int
	violations []string
	checks     int
	extras     int // checks that saw a partition list one extra replica

	// Fault injection, guarded by mu.
	addGate       chan struct{} // AddReplica waits for a receive (or close)
	addErr        error         // AddReplica fails
	removeErr     error         // RemoveReplica fails
	stuck         bool          // TransferPartition answers but no leader changes
	transferDelay time.Duration // the new leader shows up this much later
	metaErr       error         // TransferMeta fails
	calls         map[string]int
}

func newFakeCluster(t testing.TB, brokers int) *fakeCluster {
	t.Helper()
	store, err := metadata.OpenLocalStore(t.TempDir(), "fake-cluster")
	if err != nil {
		t.Fatal(err)
	}
	c := &fakeCluster{
		t: t, store: store, stop: make(chan struct{}),
		addrs:   map[int32]string{},
		members: map[assign.TopicPartition][]int32{},
		rf:      map[assign.TopicPartition]int{},
		calls:   map[string]int{},
	}
	t.Cleanup(func() { close(c.stop); c.wg.Wait() })
	var voters []int32
	for id := int32(1); id <= int32(brokers); id++ {
		c.addPeer(Peer{ID: id, KafkaAddr: fmt.Sprintf("127.0.0.%d:9092", id), RaftAddr: fmt.Sprintf("127.0.0.%d:9093", id)}, true)
		voters = append(voters, id)
	}
	c.meta = MetaStatus{LeaderID: 1, Term: 5, CommitIndex: 100, AppliedIndex: 100,
		QuorumSize: int32(len(voters)/2 + 1), ClusterSize: int32(len(voters)), VotersAlive: voters}
	return c
}

// addPeer configures a peer and registers it as a broker.
func (c *fakeCluster) addPeer(p Peer, alive bool) {
	c.t.Helper()
	c.mu.Lock()
	c.peers = append(c.peers, p)
	c.mu.Unlock()
	host, port, _ := net.SplitHostPort(p.KafkaAddr)
	n, _ := strconv.Atoi(port)
	c.mustPropose(&metadata.Command{RegisterBroker: &metadata.Broker{
		ID: p.ID, Host: host, Port: int32(n), Rack: p.Rack, Roles: roleStrings(p.Roles), RaftAddr: p.RaftAddr, Alive: alive,
	}})
}

func (c *fakeCluster) mustPropose(cmd *metadata.Command) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.proposeLocked(context.Background(), cmd); err != nil {
		c.t.Fatalf("propose %s: %v", cmd.Encode(), err)
	}
}

// proposeLocked applies cmd to the store. Caller holds c.mu.
func (c *fakeCluster) proposeLocked(ctx context.Context, cmd *metadata.Command) (metadata.Result, error) {
	res, err := c.store.Propose(ctx, cmd)
	if err == nil {
		c.checkLocked("propose")
	}
	return res, err
}

// createTopic adds a topic whose partition p has replicas p+1, p+2, ...
// (round robin over brokers 1..n), led by the first.
func (c *fakeCluster) createTopic(name string, partitions, rf, n int) {
	c.t.Helper()
	sets := make([][]int32, partitions)
	for p := range sets {
		for i := range rf {
			sets[p] = append(sets[p], int32((p+i)%n+1))
		}
	}
	c.createTopicWith(name, sets)
}

// createTopicWith adds a topic with the given replica lists, each
// partition led by its first replica with all replicas in sync.
func (c *fakeCluster) createTopicWith(name string, sets [][]int32) {
	c.t.Helper()
	t := &metadata.Topic{Name: name, Internal: name == "__consumer_offsets"}
	t.ID[0] = byte(len(name))
	for p, replicas := range sets {
		t.Partitions = append(t.Partitions, metadata.Partition{ID: int32(p), Replicas: slices.Clone(replicas),
			Leader: replicas[0], LeaderEpoch: 1, ISR: slices.Clone(replicas)})
	}
	c.mu.Lock()
	for _, p := range t.Partitions {
		tp := assign.TopicPartition{Topic: name, Partition: p.ID}
		c.members[tp] = slices.Clone(p.Replicas)
		c.rf[tp] = len(p.Replicas)
	}
	c.mu.Unlock()
	c.mustPropose(&metadata.Command{CreateTopic: t})
}

// setAlive changes a broker's liveness flag, as the controller's heartbeat
// tracking would.
func (c *fakeCluster) setAlive(id int32, alive bool) {
	c.t.Helper()
	b := c.store.State().Brokers[id]
	c.mustPropose(&metadata.Command{BrokerState: &metadata.BrokerStateCmd{ID: id, Alive: alive,
		Draining: b.Draining, Decommissioning: b.Decommissioning}})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.meta.VotersAlive = slices.DeleteFunc(c.meta.VotersAlive, func(v int32) bool { return v == id })
	if alive {
		c.meta.VotersAlive = append(c.meta.VotersAlive, id)
		slices.Sort(c.meta.VotersAlive)
	}
}

// setISR records a partition's ISR, as its leader would report it.
func (c *fakeCluster) setISR(topic string, partition int32, isr []int32) {
	c.t.Helper()
	p := c.store.State().Partition(topic, partition)
	c.mustPropose(&metadata.Command{PartitionState: &metadata.PartitionStateCmd{Topic: topic, Partition: partition,
		Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, ISR: isr}})
}

func (c *fakeCluster) setMetaLeader(id int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.meta.LeaderID = id
	c.meta.Term++
}

func (c *fakeCluster) setAddr(id int32, addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addrs[id] = addr
}

func (c *fakeCluster) count(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[op]
}

// checkLocked records every broken invariant. Caller holds c.mu.
func (c *fakeCluster) checkLocked(after string) {
	c.checks++
	st := c.store.State()
	for tp, rf := range c.rf {
		p := st.Partition(tp.Topic, tp.Partition)
		if p == nil {
			continue
		}
		mem := c.members[tp]
		bad := func(format string, args ...any) {
			c.violations = append(c.violations, fmt.Sprintf("after %s: %s/%d: ", after, tp.Topic, tp.Partition)+fmt.Sprintf(format, args...))
		}
		if len(mem) < rf {
			bad("group has %d members %v, fewer than its replication factor %d", len(mem), mem, rf)
		}
		if len(p.Replicas) == rf+1 {
			c.extras++
		}
		if len(p.Replicas) < rf || len(p.Replicas) > rf+1 {
			bad("metadata lists %d replicas %v, want %d (or one extra during a move)", len(p.Replicas), p.Replicas, rf)
		}
		for _, r := range p.Replicas {
			if !slices.Contains(mem, r) {
				bad("metadata replica %d is not a group member %v", r, mem)
			}
		}
		if p.Leader > 0 && !slices.Contains(mem, p.Leader) {
			bad("leader %d is not a group member %v", p.Leader, mem)
		}
	}
}

// assertInvariants fails the test if any change broke an invariant.
func (c *fakeCluster) assertInvariants(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.checks == 0 {
		t.Fatal("no change was checked")
	}
	for _, v := range c.violations {
		t.Error(v)
	}
}

// node is the Backend of node id.
func (c *fakeCluster) node(id int32) *fakeNode { return &fakeNode{c: c, id: id} }

// fakeNode is one node's view of a fakeCluster. metaLeader, when set,
// overrides who this node believes leads __meta.
type fakeNode struct {
	c          *fakeCluster
	id         int32
	metaLeader atomic.Int32
}

var _ Backend = (*fakeNode)(nil)

func (n *fakeNode) NodeID() int32                  { return n.id }
func (n *fakeNode) State() *metadata.State         { return n.c.store.State() }
func (n *fakeNode) Changed() <-chan struct{}       { return n.c.store.Changed() }
func (n *fakeNode) ControllerAddr() (string, bool) { return n.c.controllerAddr(n.Meta().LeaderID) }

func (n *fakeNode) Propose(ctx context.Context, cmd *metadata.Command) (metadata.Result, error) {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	n.c.calls["propose"]++
	return n.c.proposeLocked(ctx, cmd)
}

func (n *fakeNode) Meta() MetaStatus {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	m := n.c.meta
	m.VotersAlive = slices.Clone(m.VotersAlive)
	if l := n.metaLeader.Load(); l != 0 {
		m.LeaderID = l
	}
	return m
}

func (n *fakeNode) Peers() []Peer {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	return slices.Clone(n.c.peers)
}

func (c *fakeCluster) controllerAddr(leader int32) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.addrs[leader]
	return a, ok && leader != 0
}

func (c *fakeCluster) isVoterLocked(id int32) bool {
	return slices.ContainsFunc(c.peers, func(p Peer) bool { return p.ID == id && p.HasRole(config.RoleController) })
}

func (n *fakeNode) TransferMeta(ctx context.Context, to int32) (int32, error) {
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls["transfer-meta"]++
	if c.metaErr != nil {
		return 0, c.metaErr
	}
	if to == 0 {
		for _, v := range c.meta.VotersAlive {
			if v != c.meta.LeaderID {
				to = v
				break
			}
		}
	}
	if !c.isVoterLocked(to) || !slices.Contains(c.meta.VotersAlive, to) {
		return 0, fmt.Errorf("fake: node %d cannot lead __meta", to)
	}
	if to != c.meta.LeaderID {
		c.meta.LeaderID, c.meta.Term = to, c.meta.Term+1
	}
	return to, nil
}

func (n *fakeNode) TransferPartition(ctx context.Context, topic string, partition, to int32) (int32, error) {
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls["transfer"]++
	tp := assign.TopicPartition{Topic: topic, Partition: partition}
	p := c.store.State().Partition(topic, partition)
	if p == nil {
		return 0, fmt.Errorf("fake: no partition %s/%d", topic, partition)
	}
	if !slices.Contains(c.members[tp], to) {
		return 0, fmt.Errorf("fake: node %d is not a member of %s/%d", to, topic, partition)
	}
	if b := c.store.State().Brokers[to]; b == nil || !b.Alive {
		return 0, fmt.Errorf("fake: node %d is down", to)
	}
	if c.stuck || to == p.Leader {
		return to, nil
	}
	cmd := &metadata.PartitionStateCmd{Topic: topic, Partition: partition, Leader: to, LeaderEpoch: p.LeaderEpoch + 1}
	if d := c.transferDelay; d > 0 {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			select {
			case <-time.After(d):
			case <-c.stop:
				return
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			c.proposeLocked(context.Background(), &metadata.Command{PartitionState: cmd})
		}()
		return to, nil
	}
	if _, err := c.proposeLocked(ctx, &metadata.Command{PartitionState: cmd}); err != nil {
		return 0, err
	}
	return to, nil
}

func (n *fakeNode) AddReplica(ctx context.Context, topic string, partition, node int32) error {
	c := n.c
	c.mu.Lock()
	c.calls["add"]++
	gate, err := c.addGate, c.addErr
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	tp := assign.TopicPartition{Topic: topic, Partition: partition}
	p := c.store.State().Partition(topic, partition)
	if p == nil {
		return fmt.Errorf("fake: no partition %s/%d", topic, partition)
	}
	if slices.Contains(p.Replicas, node) {
		return nil // listed already: the group has it
	}
	// The real group adds the member after the metadata lists it; both
	// change here at once, members first so that the check after the
	// proposal sees the new replica as a member.
	c.members[tp] = append(c.members[tp], node)
	_, err = c.proposeLocked(ctx, &metadata.Command{PartitionState: &metadata.PartitionStateCmd{Topic: topic, Partition: partition,
		Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, Replicas: append(slices.Clone(p.Replicas), node)}})
	return err
}

func (n *fakeNode) RemoveReplica(ctx context.Context, topic string, partition, node int32) error {
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls["remove"]++
	if c.removeErr != nil {
		return c.removeErr
	}
	tp := assign.TopicPartition{Topic: topic, Partition: partition}
	mem := c.members[tp]
	p := c.store.State().Partition(topic, partition)
	switch {
	case !slices.Contains(mem, node) && !slices.Contains(p.Replicas, node):
		return nil // gone already
	case len(mem) == 1:
		return errors.New("fake: cannot remove the last member")
	case p.Leader == node:
		return fmt.Errorf("fake: node %d leads %s/%d; move the leadership first", node, topic, partition)
	}
	// The metadata first, then the group follows it; the leader reports
	// the smaller ISR.
	replicas := slices.DeleteFunc(slices.Clone(p.Replicas), func(r int32) bool { return r == node })
	isr := slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return r == node })
	if len(replicas) != len(p.Replicas) || len(isr) != len(p.ISR) {
		_, err := c.proposeLocked(ctx, &metadata.Command{PartitionState: &metadata.PartitionStateCmd{
			Topic: topic, Partition: partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, Replicas: replicas, ISR: isr}})
		if err != nil {
			return err
		}
	}
	c.members[tp] = slices.DeleteFunc(slices.Clone(mem), func(r int32) bool { return r == node })
	c.checkLocked(fmt.Sprintf("remove %d from %s/%d", node, topic, partition))
	return nil
}

func (n *fakeNode) RemoveNode(ctx context.Context, id int32) error {
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls["remove-node"]++
	if id == n.id {
		return fmt.Errorf("fake: node %d cannot remove itself", id)
	}
	c.peers = slices.DeleteFunc(c.peers, func(p Peer) bool { return p.ID == id })
	c.meta.VotersAlive = slices.DeleteFunc(c.meta.VotersAlive, func(v int32) bool { return v == id })
	if c.store.State().Brokers[id] == nil {
		return nil
	}
	_, err := c.proposeLocked(ctx, &metadata.Command{RemoveBroker: &id})
	return err
}

func (n *fakeNode) AddNode(ctx context.Context, p Peer) error {
	n.c.mu.Lock()
	n.c.calls["add-node"]++
	n.c.mu.Unlock()
	n.c.addPeer(p, false)
	return nil
}

// testLogger sends a service's logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b[:len(b)-1]))
	return len(b), nil
}

// startService runs a Service over backend b until the test ends.
func startService(t testing.TB, b Backend, mod func(*Config)) *Service {
	t.Helper()
	cfg := Config{Backend: b, Logger: testLogger(t), PollInterval: 5 * time.Millisecond,
		TransferTimeout: 5 * time.Second, StepTimeout: 10 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	s := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return s
}

// serve puts a Service on an HTTP server on 127.0.0.1, records its address
// as node id's, and returns a Connect client for it. requests counts the
// requests the server received.
func serve(t testing.TB, c *fakeCluster, id int32, s *Service) (adminv1connect.AdminServiceClient, string, *atomic.Int32) {
	t.Helper()
	var requests atomic.Int32
	h := s.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	c.setAddr(id, addr)
	return adminv1connect.NewAdminServiceClient(srv.Client(), srv.URL), addr, &requests
}

// eventually waits up to d for cond, failing the test with what when it
// does not come true.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		<-tick.C
	}
}

// clientFor is a Connect client for the Service at addr.
func clientFor(addr string) adminv1connect.AdminServiceClient {
	return adminv1connect.NewAdminServiceClient(http.DefaultClient, "http://"+addr)
}
