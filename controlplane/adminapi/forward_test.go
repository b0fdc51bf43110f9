package adminapi

import (
	"context"
	"net"
	"testing"
	"time"

	"connectrpc.com/connect"

	adminv1 "github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1"
	"github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1/adminv1connect"
)

func TestFollowerForwardsToTheController(t *testing.T) {
	c := newFakeCluster(t, 3)
	c.createTopic("orders", 3, 3, 3)
	c.createTopic("__consumer_offsets", 2, 3, 3)
	_, _, reqs1 := serve(t, c, 1, startService(t, c.node(1), nil))
	cl2, _, reqs2 := serve(t, c, 2, startService(t, c.node(2), nil))
	ctx := context.Background()

	plan, err := cl2.StartRebalance(ctx, connect.NewRequest(&adminv1.StartRebalanceRequest{DryRun: true}))
	if err != nil || len(plan.Msg.GetMoves()) != 0 {
		t.Fatalf("dry run through node 2: %v %v", plan, err)
	}
	if reqs1.Load() != 1 || reqs2.Load() != 1 {
		t.Errorf("requests: node 1 %d, node 2 %d; want one each", reqs1.Load(), reqs2.Load())
	}

	_, err = cl2.AddNode(ctx, connect.NewRequest(&adminv1.AddNodeRequest{NodeId: 4, KafkaAddr: "127.0.0.4:9092", RaftPort: 9093}))
	if err != nil || c.count("add-node") != 1 {
		t.Fatalf("add node through node 2: %v (backend calls %d)", err, c.count("add-node"))
	}
	// Errors come back from the controller as it sent them.
	_, err = cl2.AddNode(ctx, connect.NewRequest(&adminv1.AddNodeRequest{NodeId: 4, KafkaAddr: "127.0.0.4:9092", RaftPort: 9093}))
	wantErr(t, err, connect.CodeAlreadyExists, "node 4 already exists")
	_, err = cl2.DrainNode(ctx, connect.NewRequest(&adminv1.DrainNodeRequest{NodeId: 9}))
	wantErr(t, err, connect.CodeNotFound, "unknown node 9")
	st, err := cl2.GetRebalanceStatus(ctx, connect.NewRequest(&adminv1.GetRebalanceStatusRequest{}))
	if err != nil || st.Msg.GetStatus().GetState() != adminv1.RebalanceState_REBALANCE_STATE_IDLE {
		t.Fatalf("rebalance status through node 2: %v %v", st, err)
	}

	status, err := cl2.GetClusterStatus(ctx, connect.NewRequest(&adminv1.GetClusterStatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if src := status.Header().Get(StatusSourceHeader); src != "controller" {
		t.Errorf("status source %q", src)
	}
	if got := status.Header().Get(InternalTopicsHeader); got != "__consumer_offsets" {
		t.Errorf("internal topics %q", got)
	}
	before := reqs1.Load()

	// The controller stops answering: status comes from node 2's own image,
	// changes are refused.
	c.setAddr(1, deadAddr(t))
	status, err = cl2.GetClusterStatus(ctx, connect.NewRequest(&adminv1.GetClusterStatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if src := status.Header().Get(StatusSourceHeader); src != "local" || len(status.Msg.GetNodes()) != 4 {
		t.Errorf("status source %q, %d nodes", src, len(status.Msg.GetNodes()))
	}
	_, err = cl2.StartRebalance(ctx, connect.NewRequest(&adminv1.StartRebalanceRequest{}))
	wantErr(t, err, connect.CodeUnavailable, "forward to the active controller at")
	if reqs1.Load() != before {
		t.Error("node 1 was still reached")
	}
}

// deadAddr returns a 127.0.0.1 address on which nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestForwardingNeverLoops(t *testing.T) {
	c := newFakeCluster(t, 3)
	c.createTopic("orders", 3, 3, 3)
	// Nodes 1 and 2 each believe the other leads __meta.
	n1, n2 := c.node(1), c.node(2)
	n1.metaLeader.Store(2)
	n2.metaLeader.Store(1)
	cl1, _, reqs1 := serve(t, c, 1, startService(t, n1, nil))
	_, _, reqs2 := serve(t, c, 2, startService(t, n2, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cl1.StartRebalance(ctx, connect.NewRequest(&adminv1.StartRebalanceRequest{DryRun: true}))
	wantErr(t, err, connect.CodeUnavailable, "node 2 is not the active controller either (call forwarded by node 1)")
	if reqs1.Load() != 1 || reqs2.Load() != 1 {
		t.Errorf("requests: node 1 %d, node 2 %d; want one each", reqs1.Load(), reqs2.Load())
	}
	// Status still answers, from node 2's image.
	status, err := cl1.GetClusterStatus(ctx, connect.NewRequest(&adminv1.GetClusterStatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if src := status.Header().Get(StatusSourceHeader); src != "local" {
		t.Errorf("status source %q", src)
	}
}

func TestNoController(t *testing.T) {
	c := newFakeCluster(t, 3)
	c.createTopic("orders", 3, 3, 3)
	cl2, _, _ := serve(t, c, 2, startService(t, c.node(2), nil))
	c.setMetaLeader(0)
	_, err := cl2.DrainNode(context.Background(), connect.NewRequest(&adminv1.DrainNodeRequest{NodeId: 1}))
	wantErr(t, err, connect.CodeUnavailable, "no active controller: __meta has no leader that node 2 knows of")
	status, err := cl2.GetClusterStatus(context.Background(), connect.NewRequest(&adminv1.GetClusterStatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if status.Msg.GetMeta().GetLeaderId() != 0 || status.Header().Get(StatusSourceHeader) != "local" {
		t.Errorf("status %v", status.Msg.GetMeta())
	}
}

func TestDecommissionTheActiveController(t *testing.T) {
	c := newFakeCluster(t, 4)
	c.createTopic("orders", 8, 3, 4)
	var cl1 adminv1connect.AdminServiceClient // every node serves; keep node 1's client
	for id := int32(4); id >= 1; id-- {
		cl1, _, _ = serve(t, c, id, startService(t, c.node(id), nil))
	}
	resp, err := cl1.DecommissionNode(context.Background(), connect.NewRequest(&adminv1.DecommissionNodeRequest{NodeId: 1}))
	if err != nil {
		t.Fatal(err)
	}
	leader := c.node(1).Meta().LeaderID
	if leader == 1 || leader == 0 {
		t.Fatalf("__meta leader %d", leader)
	}
	// Node 1 still serves: it forwards the status calls to the new controller.
	st := waitRebalance(t, cl1, resp.Msg.GetRebalanceId())
	if st.GetState() != adminv1.RebalanceState_REBALANCE_STATE_DONE {
		t.Fatalf("status %v", st)
	}
	c.assertInvariants(t)
	state := c.store.State()
	if state.Brokers[1] != nil {
		t.Error("node 1 is still registered")
	}
	if replicas, _, _ := spread(t, state, map[string]int{"orders": 3}); replicas[1] != 0 {
		t.Errorf("node 1 still hosts %d replicas", replicas[1])
	}
}
