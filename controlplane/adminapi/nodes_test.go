package adminapi

import (
	"context"
	"slices"
	"testing"

	"connectrpc.com/connect"

	adminv1 "github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1"
	"github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1/adminv1connect"
)

func drain(cl adminv1connect.AdminServiceClient, id int32) (*adminv1.DrainNodeResponse, error) {
	resp, err := cl.DrainNode(context.Background(), connect.NewRequest(&adminv1.DrainNodeRequest{NodeId: id}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

func TestDrainNode(t *testing.T) {
	c, s, cl := threeNodes(t)
	resp, err := drain(cl, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetChanges()) != 4 || resp.GetChanges()[0].GetTopic() != "__meta" {
		t.Errorf("changes %v", resp.GetChanges())
	}
	if n := resp.GetNode(); n.GetNodeId() != 1 || n.GetState() != adminv1.NodeState_NODE_STATE_DRAINED || n.GetLeaderCount() != 0 || n.GetIsMetaLeader() {
		t.Errorf("node after drain %v", n)
	}
	if b := c.store.State().Brokers[1]; !b.Draining || !b.Alive {
		t.Errorf("broker 1 %+v", b)
	}
	// A drained node is the last choice for a new leadership: orders/1
	// goes to node 3 although node 1 leads nothing.
	changes := mustTransfer(t, cl, transferPart("orders", 1, 0))
	if changes[0].GetNewLeaderId() != 3 {
		t.Errorf("orders/1 went to %d", changes[0].GetNewLeaderId())
	}
	// Nor does a rebalance give leaderships back to a draining node. (The
	// __meta leadership has moved off node 1 too, so plan directly.)
	for _, m := range movesProto(s.plan(c.store.State(), 0)) {
		if m.GetNewLeaderId() == 1 {
			t.Errorf("plan moves a leadership to the draining node: %v", m)
		}
	}
	// Draining again moves nothing.
	if resp, err := drain(cl, 1); err != nil || len(resp.GetChanges()) != 0 {
		t.Errorf("second drain: %v %v", resp, err)
	}
	_, err = drain(cl, 7)
	wantErr(t, err, connect.CodeNotFound, "unknown node 7")
}

func TestDrainNodeReportsWhatStays(t *testing.T) {
	c, _, cl := threeNodes(t)
	c.createTopic("audit", 1, 1, 3) // only on node 1
	resp, err := drain(cl, 1)
	if err != nil {
		t.Fatal(err)
	}
	if n := resp.GetNode(); n.GetState() != adminv1.NodeState_NODE_STATE_DRAINING || n.GetLeaderCount() != 1 {
		t.Errorf("node after drain %v", n)
	}
}

func decommission(cl adminv1connect.AdminServiceClient, id int32, dryRun bool) (*adminv1.DecommissionNodeResponse, error) {
	resp, err := cl.DecommissionNode(context.Background(), connect.NewRequest(&adminv1.DecommissionNodeRequest{NodeId: id, DryRun: dryRun}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// fourNodes is four nodes with orders (8 partitions, RF 3) and payments (4
// partitions, RF 2) spread over all of them.
func fourNodes(t *testing.T) (*fakeCluster, adminv1connect.AdminServiceClient) {
	t.Helper()
	c := newFakeCluster(t, 4)
	c.createTopic("orders", 8, 3, 4)
	c.createTopic("payments", 4, 2, 4)
	s := startService(t, c.node(1), nil)
	cl, _, _ := serve(t, c, 1, s)
	return c, cl
}

func TestDecommissionNode(t *testing.T) {
	for _, dead := range []bool{false, true} {
		name := "alive"
		if dead {
			name = "dead"
		}
		t.Run(name, func(t *testing.T) {
			c, cl := fourNodes(t)
			if dead {
				c.setAlive(3, false)
			}
			plan, err := decommission(cl, 3, true)
			if err != nil {
				t.Fatal(err)
			}
			removed := 0
			for _, m := range plan.GetMoves() {
				if m.GetAddReplica() == 3 || m.GetNewLeaderId() == 3 {
					t.Errorf("move %v puts something on node 3", m)
				}
				if m.GetRemoveReplica() == 3 {
					removed++
				}
			}
			_, hosted := leaderCounts(c.store.State())
			if removed != hosted[3] || plan.GetRebalanceId() != "" || c.store.State().Brokers[3].Decommissioning {
				t.Fatalf("dry run: %d of %d replicas moved off, id %q", removed, hosted[3], plan.GetRebalanceId())
			}

			resp, err := decommission(cl, 3, false)
			if err != nil {
				t.Fatal(err)
			}
			if !c.store.State().Brokers[3].Decommissioning {
				t.Error("node 3 is not marked decommissioning")
			}
			st := waitRebalance(t, cl, resp.GetRebalanceId())
			if st.GetState() != adminv1.RebalanceState_REBALANCE_STATE_DONE {
				t.Fatalf("status %v", st)
			}
			c.assertInvariants(t)
			state := c.store.State()
			if state.Brokers[3] != nil {
				t.Error("node 3 is still registered")
			}
			replicas, _, _ := spread(t, state, map[string]int{"orders": 3, "payments": 2})
			if replicas[3] != 0 {
				t.Errorf("node 3 still hosts %d replicas", replicas[3])
			}
			evenOver(t, "replicas", replicas, 1, 2, 4)
		})
	}
}

func TestDecommissionRefused(t *testing.T) {
	c, _, cl := threeNodes(t)
	_, err := decommission(cl, 3, false)
	wantErr(t, err, connect.CodeFailedPrecondition,
		"cannot decommission node 3: __consumer_offsets/0 has 3 replicas but only 2 other live brokers ([1 2]) could hold them")
	if c.store.State().Brokers[3].Decommissioning {
		t.Error("a refused decommission marked the node")
	}
	_, err = decommission(cl, 9, false)
	wantErr(t, err, connect.CodeNotFound, "unknown node 9")

	one := newFakeCluster(t, 1)
	s := startService(t, one.node(1), nil)
	cl1, _, _ := serve(t, one, 1, s)
	_, err = decommission(cl1, 1, true)
	wantErr(t, err, connect.CodeFailedPrecondition, "node 1 is the last __meta voter")
}

func TestAddNode(t *testing.T) {
	c, _, cl := threeNodes(t)
	add := func(req *adminv1.AddNodeRequest) (*adminv1.Node, error) {
		resp, err := cl.AddNode(context.Background(), connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return resp.Msg.GetNode(), nil
	}
	n, err := add(&adminv1.AddNodeRequest{NodeId: 4, KafkaAddr: "node4.example.com:9092", RaftPort: 9093, Rack: "r2",
		Roles: []adminv1.NodeRole{adminv1.NodeRole_NODE_ROLE_BROKER}})
	if err != nil {
		t.Fatal(err)
	}
	if n.GetNodeId() != 4 || n.GetAlive() || n.GetKafkaAddr() != "node4.example.com:9092" || n.GetRaftAddr() != "node4.example.com:9093" ||
		n.GetRack() != "r2" || !slices.Equal(n.GetRoles(), []adminv1.NodeRole{adminv1.NodeRole_NODE_ROLE_BROKER}) {
		t.Errorf("added node %v", n)
	}
	if c.count("add-node") != 1 {
		t.Error("the backend was not asked to add the node")
	}
	list, err := cl.ListNodes(context.Background(), connect.NewRequest(&adminv1.ListNodesRequest{}))
	if err != nil || len(list.Msg.GetNodes()) != 4 {
		t.Fatalf("list %v %v", list, err)
	}
	for _, tc := range []struct {
		req  *adminv1.AddNodeRequest
		code connect.Code
		msg  string
	}{
		{&adminv1.AddNodeRequest{NodeId: 4, KafkaAddr: "h:9092", RaftPort: 9093}, connect.CodeAlreadyExists, "node 4 already exists"},
		{&adminv1.AddNodeRequest{NodeId: 300, KafkaAddr: "h:9092", RaftPort: 9093}, connect.CodeInvalidArgument, "node_id 300 is outside 1-255"},
		{&adminv1.AddNodeRequest{NodeId: 5, KafkaAddr: "h", RaftPort: 9093}, connect.CodeInvalidArgument, `kafka_addr "h" is not host:port`},
		{&adminv1.AddNodeRequest{NodeId: 5, KafkaAddr: "h:x", RaftPort: 9093}, connect.CodeInvalidArgument, "has no valid port"},
		{&adminv1.AddNodeRequest{NodeId: 5, KafkaAddr: "h:9092", RaftPort: 0}, connect.CodeInvalidArgument, "raft_port 0 is not a port"},
	} {
		_, err := add(tc.req)
		wantErr(t, err, tc.code, tc.msg)
	}
}

func TestDecommissionRefusesToLoseData(t *testing.T) {
	c, cl := fourNodes(t)
	c.createTopic("audit", 1, 1, 4) // audit/0 only on node 1
	c.setAlive(1, false)
	_, err := decommission(cl, 1, true)
	wantErr(t, err, connect.CodeFailedPrecondition, "cannot decommission node 1: audit/0 has no live replica (replicas [1]) to copy its data from")
}
