package adminapi

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/chronik-stream/chronik/controlplane/metadata"
	adminv1 "github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1"
	"github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1/adminv1connect"
)

// fourthNode is a three-node cluster with orders (6 partitions, RF 3) and
// payments (4 partitions, RF 2) to which node 4 has just been added (with
// AddNode) and has started: it is alive and holds nothing. The Service runs
// on node 1, the active controller.
func fourthNode(t *testing.T) (*fakeCluster, *Service, adminv1connect.AdminServiceClient) {
	t.Helper()
	c := newFakeCluster(t, 3)
	s, cl := addFourthNode(t, c, c.node(1))
	return c, s, cl
}

func addFourthNode(t *testing.T, c *fakeCluster, n *fakeNode) (*Service, adminv1connect.AdminServiceClient) {
	t.Helper()
	c.createTopic("orders", 6, 3, 3)
	c.createTopic("payments", 4, 2, 3)
	s := startService(t, n, nil)
	cl, _, _ := serve(t, c, 1, s)
	_, err := cl.AddNode(context.Background(), connect.NewRequest(&adminv1.AddNodeRequest{
		NodeId: 4, KafkaAddr: "127.0.0.4:9092", RaftPort: 9093}))
	if err != nil {
		t.Fatalf("add node 4: %v", err)
	}
	c.setAlive(4, true)
	return s, cl
}

func startRebalance(t *testing.T, cl adminv1connect.AdminServiceClient, dryRun bool) *adminv1.StartRebalanceResponse {
	t.Helper()
	resp, err := cl.StartRebalance(context.Background(), connect.NewRequest(&adminv1.StartRebalanceRequest{DryRun: dryRun}))
	if err != nil {
		t.Fatalf("start rebalance: %v", err)
	}
	return resp.Msg
}

func rebalanceStatus(t *testing.T, cl adminv1connect.AdminServiceClient, id string) *adminv1.RebalanceStatus {
	t.Helper()
	resp, err := cl.GetRebalanceStatus(context.Background(), connect.NewRequest(&adminv1.GetRebalanceStatusRequest{RebalanceId: id}))
	if err != nil {
		t.Fatalf("get rebalance status: %v", err)
	}
	return resp.Msg.GetStatus()
}

// waitRebalance polls a rebalance until it is no longer running.
func waitRebalance(t *testing.T, cl adminv1connect.AdminServiceClient, id string) *adminv1.RebalanceStatus {
	t.Helper()
	var st *adminv1.RebalanceStatus
	eventually(t, 20*time.Second, "rebalance "+id+" to end", func() bool {
		st = rebalanceStatus(t, cl, id)
		return st.GetState() != adminv1.RebalanceState_REBALANCE_STATE_RUNNING
	})
	return st
}

// spread returns, per node, the replicas hosted, the preferred leaderships
// and the leaderships held, and fails the test unless every partition is
// led by its preferred leader and has rf replicas.
func spread(t *testing.T, st *metadata.State, rf map[string]int) (replicas, preferred, leaders map[int32]int) {
	t.Helper()
	replicas, preferred, leaders = map[int32]int{}, map[int32]int{}, map[int32]int{}
	for _, tp := range st.SortedTopics() {
		for _, p := range tp.Partitions {
			if len(p.Replicas) != rf[tp.Name] {
				t.Errorf("%s/%d has replicas %v, want %d", tp.Name, p.ID, p.Replicas, rf[tp.Name])
			}
			if p.Leader != p.Replicas[0] {
				t.Errorf("%s/%d is led by %d, not its preferred leader %d", tp.Name, p.ID, p.Leader, p.Replicas[0])
			}
			for _, r := range p.Replicas {
				replicas[r]++
			}
			preferred[p.Replicas[0]]++
			leaders[p.Leader]++
		}
	}
	return replicas, preferred, leaders
}

func evenOver(t *testing.T, what string, counts map[int32]int, nodes ...int32) {
	t.Helper()
	lo, hi := 1<<30, -1
	for _, n := range nodes {
		lo, hi = min(lo, counts[n]), max(hi, counts[n])
	}
	if hi-lo > 1 {
		t.Errorf("%s are uneven over nodes %v: %v", what, nodes, counts)
	}
}

func TestRebalanceAfterAddingANode(t *testing.T) {
	c, _, cl := fourthNode(t)
	plan := startRebalance(t, cl, true)
	if plan.GetRebalanceId() != "" || len(plan.GetMoves()) == 0 {
		t.Fatalf("dry run: id %q, %d moves", plan.GetRebalanceId(), len(plan.GetMoves()))
	}
	for _, m := range plan.GetMoves() {
		if m.GetAddReplica() != 0 && m.GetAddReplica() != 4 {
			t.Errorf("move %v adds a replica elsewhere than on the new node", m)
		}
	}
	if c.count("add") != 0 || c.count("propose") != 0 {
		t.Fatal("the dry run changed something")
	}

	started := startRebalance(t, cl, false)
	if started.GetRebalanceId() == "" || len(started.GetMoves()) != len(plan.GetMoves()) {
		t.Fatalf("start: id %q, %d moves (dry run had %d)", started.GetRebalanceId(), len(started.GetMoves()), len(plan.GetMoves()))
	}
	st := waitRebalance(t, cl, started.GetRebalanceId())
	if st.GetState() != adminv1.RebalanceState_REBALANCE_STATE_DONE || st.GetStepsDone() != st.GetStepsTotal() ||
		int(st.GetStepsTotal()) != len(plan.GetMoves()) || st.GetError() != "" || st.GetCurrentMove() != nil ||
		st.GetStartedAt() == nil || st.GetFinishedAt() == nil {
		t.Fatalf("status %v", st)
	}
	c.assertInvariants(t)
	c.mu.Lock()
	extras := c.extras
	c.mu.Unlock()
	if extras == 0 {
		t.Error("no replica move listed the new replica as an extra one before removing the old")
	}
	replicas, preferred, leaders := spread(t, c.store.State(), map[string]int{"orders": 3, "payments": 2})
	evenOver(t, "replicas", replicas, 1, 2, 3, 4)
	evenOver(t, "preferred leaders", preferred, 1, 2, 3, 4)
	evenOver(t, "leaders", leaders, 1, 2, 3, 4)
	if replicas[4] == 0 || leaders[4] == 0 {
		t.Errorf("node 4 hosts %d replicas and leads %d", replicas[4], leaders[4])
	}
	if again := startRebalance(t, cl, false); again.GetRebalanceId() != "" || len(again.GetMoves()) != 0 {
		t.Errorf("a balanced cluster planned %v", again.GetMoves())
	}
	// The finished rebalance is still there by id and as the last one.
	if got := rebalanceStatus(t, cl, ""); got.GetRebalanceId() != started.GetRebalanceId() {
		t.Errorf("last rebalance %v", got)
	}
}

func TestRebalanceProgressAndCancel(t *testing.T) {
	c, s, cl := fourthNode(t)
	if st := rebalanceStatus(t, cl, ""); st.GetState() != adminv1.RebalanceState_REBALANCE_STATE_IDLE {
		t.Fatalf("before any rebalance: %v", st)
	}
	gate := make(chan struct{})
	c.mu.Lock()
	c.addGate = gate
	c.mu.Unlock()
	started := startRebalance(t, cl, false)
	id := started.GetRebalanceId()
	eventually(t, 5*time.Second, "the first replica move to start", func() bool { return c.count("add") == 1 })

	st := rebalanceStatus(t, cl, id)
	if st.GetState() != adminv1.RebalanceState_REBALANCE_STATE_RUNNING || st.GetStepsDone() != 0 ||
		int(st.GetStepsTotal()) != len(started.GetMoves()) || !sameMove(st.GetCurrentMove(), started.GetMoves()[0]) {
		t.Fatalf("running status %v, first move %v", st, started.GetMoves()[0])
	}
	_, err := cl.StartRebalance(context.Background(), connect.NewRequest(&adminv1.StartRebalanceRequest{}))
	wantErr(t, err, connect.CodeFailedPrecondition, "a rebalance is already running (id "+id)
	_, err = cl.DecommissionNode(context.Background(), connect.NewRequest(&adminv1.DecommissionNodeRequest{NodeId: 3}))
	wantErr(t, err, connect.CodeFailedPrecondition, "a rebalance is already running")
	if c.store.State().Brokers[3].Decommissioning {
		t.Error("a refused decommission marked node 3")
	}

	type result struct {
		st  *adminv1.RebalanceStatus
		err error
	}
	cancelled := make(chan result, 1)
	go func() {
		resp, err := cl.CancelRebalance(context.Background(), connect.NewRequest(&adminv1.CancelRebalanceRequest{}))
		if err != nil {
			cancelled <- result{err: err}
			return
		}
		cancelled <- result{st: resp.Msg.GetStatus()}
	}()
	eventually(t, 5*time.Second, "the cancel to be noted", func() bool {
		s.reb.mu.Lock()
		defer s.reb.mu.Unlock()
		return s.reb.current != nil && s.reb.current.cancelled
	})
	select {
	case r := <-cancelled:
		t.Fatalf("cancel answered before the move in flight ended: %v %v", r.st, r.err)
	default:
	}
	close(gate) // the move in flight finishes
	r := <-cancelled
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.st.GetState() != adminv1.RebalanceState_REBALANCE_STATE_CANCELLED || r.st.GetStepsDone() != 1 || r.st.GetFinishedAt() == nil {
		t.Fatalf("after cancel: %v", r.st)
	}
	if c.count("add") != 1 {
		t.Errorf("%d replica adds after cancel, want the one in flight", c.count("add"))
	}
	c.assertInvariants(t)

	again, err := cl.CancelRebalance(context.Background(), connect.NewRequest(&adminv1.CancelRebalanceRequest{RebalanceId: id}))
	if err != nil || again.Msg.GetStatus().GetState() != adminv1.RebalanceState_REBALANCE_STATE_CANCELLED {
		t.Errorf("cancel of a finished rebalance: %v %v", again, err)
	}
	_, err = cl.CancelRebalance(context.Background(), connect.NewRequest(&adminv1.CancelRebalanceRequest{}))
	wantErr(t, err, connect.CodeFailedPrecondition, "no rebalance is running")
	_, err = cl.GetRebalanceStatus(context.Background(), connect.NewRequest(&adminv1.GetRebalanceStatusRequest{RebalanceId: "rb-nope"}))
	wantErr(t, err, connect.CodeNotFound, "unknown rebalance rb-nope")

	// A new rebalance picks up what is left.
	rest := startRebalance(t, cl, false)
	if len(rest.GetMoves()) >= len(started.GetMoves()) || rest.GetRebalanceId() == id {
		t.Errorf("second plan %d moves (first %d), id %q", len(rest.GetMoves()), len(started.GetMoves()), rest.GetRebalanceId())
	}
	if st := waitRebalance(t, cl, rest.GetRebalanceId()); st.GetState() != adminv1.RebalanceState_REBALANCE_STATE_DONE {
		t.Fatalf("second rebalance %v", st)
	}
	c.assertInvariants(t)
}

func sameMove(a, b *adminv1.RebalanceMove) bool {
	return a.GetTopic() == b.GetTopic() && a.GetPartition() == b.GetPartition() && a.GetAddReplica() == b.GetAddReplica() &&
		a.GetRemoveReplica() == b.GetRemoveReplica() && a.GetNewLeaderId() == b.GetNewLeaderId()
}

func TestRebalanceFails(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inject func(c *fakeCluster)
		msg    string
	}{
		{"add", func(c *fakeCluster) { c.addErr = errors.New("fake: snapshot install failed") }, "add node 4 to"},
		{"remove", func(c *fakeCluster) { c.removeErr = errors.New("fake: configuration change refused") }, "stays an extra member"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, cl := fourthNode(t)
			c.mu.Lock()
			tc.inject(c)
			c.mu.Unlock()
			st := waitRebalance(t, cl, startRebalance(t, cl, false).GetRebalanceId())
			if st.GetState() != adminv1.RebalanceState_REBALANCE_STATE_FAILED || st.GetStepsDone() != 0 ||
				!containsAll(st.GetError(), "step 1/", tc.msg) {
				t.Fatalf("status %v", st)
			}
			c.assertInvariants(t)
		})
	}
}

func TestRebalanceStopsOnLosingTheMetaLeadership(t *testing.T) {
	c := newFakeCluster(t, 3)
	n1 := c.node(1)
	s, cl := addFourthNode(t, c, n1)
	gate := make(chan struct{})
	c.mu.Lock()
	c.addGate = gate
	c.mu.Unlock()
	id := startRebalance(t, cl, false).GetRebalanceId()
	eventually(t, 5*time.Second, "the first move to start", func() bool { return c.count("add") == 1 })
	n1.metaLeader.Store(2) // node 1 learns that node 2 leads __meta now
	close(gate)
	// Node 1 would forward a status call now; read its executor directly.
	var st *adminv1.RebalanceStatus
	eventually(t, 5*time.Second, "the rebalance to stop", func() bool {
		var err error
		st, err = s.reb.status(id)
		return err == nil && st.GetState() != adminv1.RebalanceState_REBALANCE_STATE_RUNNING
	})
	if st.GetState() != adminv1.RebalanceState_REBALANCE_STATE_FAILED || st.GetStepsDone() != 1 ||
		!containsAll(st.GetError(), "step 2/", "no longer leads __meta", "leader now 2") {
		t.Fatalf("status %v", st)
	}
	c.assertInvariants(t)
}

func TestRebalanceNeedsRun(t *testing.T) {
	c := newFakeCluster(t, 3)
	c.createTopic("orders", 3, 3, 3)
	s := New(Config{Backend: c.node(1), Logger: testLogger(t)})
	_, err := s.StartRebalance(context.Background(), connect.NewRequest(&adminv1.StartRebalanceRequest{}))
	if err != nil {
		t.Fatalf("a balanced cluster needs no executor: %v", err)
	}
	c.addPeer(Peer{ID: 4, KafkaAddr: "127.0.0.4:9092", RaftAddr: "127.0.0.4:9093"}, true)
	_, err = s.StartRebalance(context.Background(), connect.NewRequest(&adminv1.StartRebalanceRequest{}))
	wantErr(t, err, connect.CodeUnavailable, "rebalance executor of node 1 is not running")
}

func TestRebalanceEndsWhenTheServiceStops(t *testing.T) {
	c := newFakeCluster(t, 3)
	c.createTopic("orders", 6, 3, 3)
	c.addPeer(Peer{ID: 4, KafkaAddr: "127.0.0.4:9092", RaftAddr: "127.0.0.4:9093"}, true)
	gate := make(chan struct{})
	c.addGate = gate
	s := New(Config{Backend: c.node(1), Logger: testLogger(t), StepTimeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	eventually(t, 5*time.Second, "the executor to run", func() bool {
		s.reb.mu.Lock()
		defer s.reb.mu.Unlock()
		return s.reb.active
	})
	resp, err := s.StartRebalance(context.Background(), connect.NewRequest(&adminv1.StartRebalanceRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the first move to start", func() bool { return c.count("add") == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st, err := s.reb.status(resp.Msg.GetRebalanceId())
	if err != nil || st.GetState() != adminv1.RebalanceState_REBALANCE_STATE_FAILED || !contains(st.GetError(), "add node 4") {
		t.Fatalf("after stop: %v %v", st, err)
	}
	c.assertInvariants(t)
	_, err = s.StartRebalance(context.Background(), connect.NewRequest(&adminv1.StartRebalanceRequest{}))
	wantErr(t, err, connect.CodeUnavailable, "not running")
}

func containsAll(s string, subs ...string) bool {
	return !slices.ContainsFunc(subs, func(sub string) bool { return !contains(s, sub) })
}

func TestRebalanceMovesLeaders(t *testing.T) {
	c := newFakeCluster(t, 3)
	c.createTopicWith("skewed", [][]int32{{1, 2, 3}, {1, 2, 3}, {1, 3, 2}, {1, 3, 2}, {1, 2, 3}, {1, 2, 3}})
	s := startService(t, c.node(1), nil)
	cl, _, _ := serve(t, c, 1, s)
	started := startRebalance(t, cl, false)
	for _, m := range started.GetMoves() {
		if m.GetAddReplica() != 0 || m.GetRemoveReplica() != 0 || m.GetNewLeaderId() == 0 {
			t.Errorf("move %v is not a leader move", m)
		}
	}
	if len(started.GetMoves()) != 4 {
		t.Errorf("%d moves, want 4 (two partitions each to nodes 2 and 3)", len(started.GetMoves()))
	}
	if st := waitRebalance(t, cl, started.GetRebalanceId()); st.GetState() != adminv1.RebalanceState_REBALANCE_STATE_DONE {
		t.Fatalf("status %v", st)
	}
	c.assertInvariants(t)
	_, preferred, leaders := spread(t, c.store.State(), map[string]int{"skewed": 3})
	for _, n := range []int32{1, 2, 3} {
		if preferred[n] != 2 || leaders[n] != 2 {
			t.Errorf("node %d: preferred leader of %d, leader of %d; want 2 and 2", n, preferred[n], leaders[n])
		}
	}
}

func TestRebalanceRestoresPreferredLeaders(t *testing.T) {
	c, _, cl := threeNodes(t)
	// After a drain of node 1 and its restart, others lead what it prefers.
	if _, err := drain(cl, 1); err != nil {
		t.Fatal(err)
	}
	if err := Resume(context.Background(), c.node(1), 1); err != nil {
		t.Fatal(err)
	}
	if c.store.State().Brokers[1].Draining {
		t.Fatal("node 1 still draining")
	}
	// __meta went elsewhere; ask whoever leads it now (node 1 forwards).
	plan := startRebalance(t, cl, true)
	if len(plan.GetMoves()) != 3 {
		t.Fatalf("plan %v, want the three partitions node 1 prefers", plan.GetMoves())
	}
	for _, m := range plan.GetMoves() {
		if m.GetNewLeaderId() != 1 || m.GetAddReplica() != 0 {
			t.Errorf("move %v", m)
		}
	}
	st := waitRebalance(t, cl, startRebalance(t, cl, false).GetRebalanceId())
	if st.GetState() != adminv1.RebalanceState_REBALANCE_STATE_DONE {
		t.Fatalf("status %v", st)
	}
	spread(t, c.store.State(), map[string]int{"orders": 3, "payments": 2, "__consumer_offsets": 3})
	c.assertInvariants(t)

	if err := Resume(context.Background(), c.node(1), 9); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("resume of an unknown node: %v", err)
	}
}
