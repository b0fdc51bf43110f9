package adminapi

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/chronik-stream/chronik/controlplane/config"
	adminv1 "github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1"
	"github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1/adminv1connect"
)

func transferMeta(to int32) *adminv1.TransferLeaderRequest {
	return &adminv1.TransferLeaderRequest{Target: &adminv1.TransferLeaderRequest_Meta{Meta: true}, ToNodeId: to}
}

func transferPart(topic string, p, to int32) *adminv1.TransferLeaderRequest {
	return &adminv1.TransferLeaderRequest{ToNodeId: to, Target: &adminv1.TransferLeaderRequest_Partition{
		Partition: &adminv1.PartitionRef{Topic: topic, Partition: p}}}
}

func transferNode(node, to int32) *adminv1.TransferLeaderRequest {
	return &adminv1.TransferLeaderRequest{Target: &adminv1.TransferLeaderRequest_NodeId{NodeId: node}, ToNodeId: to}
}

func doTransfer(cl adminv1connect.AdminServiceClient, req *adminv1.TransferLeaderRequest) ([]*adminv1.LeadershipChange, error) {
	resp, err := cl.TransferLeader(context.Background(), connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetChanges(), nil
}

func mustTransfer(t *testing.T, cl adminv1connect.AdminServiceClient, req *adminv1.TransferLeaderRequest) []*adminv1.LeadershipChange {
	t.Helper()
	changes, err := doTransfer(cl, req)
	if err != nil {
		t.Fatalf("transfer %v: %v", req, err)
	}
	return changes
}

func wantChange(t *testing.T, ch *adminv1.LeadershipChange, topic string, p, from, to int32, term uint64) {
	t.Helper()
	if ch.GetTopic() != topic || ch.GetPartition() != p || ch.GetPreviousLeaderId() != from || ch.GetNewLeaderId() != to || ch.GetTerm() != term {
		t.Errorf("change %v, want %s/%d %d -> %d term %d", ch, topic, p, from, to, term)
	}
}

func TestTransferMeta(t *testing.T) {
	c, _, cl := threeNodes(t)
	changes := mustTransfer(t, cl, transferMeta(3))
	if len(changes) != 1 {
		t.Fatalf("changes %v", changes)
	}
	wantChange(t, changes[0], "__meta", 0, 1, 3, 6)
	if got := c.node(1).Meta().LeaderID; got != 3 {
		t.Errorf("__meta leader %d", got)
	}
	if changes := mustTransfer(t, cl, transferMeta(3)); len(changes) != 0 {
		t.Errorf("moving to the leader changed %v", changes)
	}
	// Best candidate: nodes 1 and 2 lead three partitions each; the lower id wins.
	changes = mustTransfer(t, cl, transferMeta(0))
	wantChange(t, changes[0], "__meta", 0, 3, 1, 7)
}

func TestTransferMetaErrors(t *testing.T) {
	c, _, cl := threeNodes(t)
	c.addPeer(Peer{ID: 4, Roles: []config.Role{config.RoleBroker}, KafkaAddr: "127.0.0.4:9092", RaftAddr: "127.0.0.4:9093"}, true)
	c.setAlive(2, false)
	for _, tc := range []struct {
		req  *adminv1.TransferLeaderRequest
		code connect.Code
		msg  string
	}{
		{transferMeta(7), connect.CodeNotFound, "unknown node 7"},
		{transferMeta(4), connect.CodeFailedPrecondition, "node 4 is not a __meta voter"},
		{transferMeta(2), connect.CodeFailedPrecondition, "node 2 is not alive"},
		{&adminv1.TransferLeaderRequest{}, connect.CodeInvalidArgument, "name what to move"},
		{&adminv1.TransferLeaderRequest{Target: &adminv1.TransferLeaderRequest_Meta{}}, connect.CodeInvalidArgument, "meta must be true"},
		{&adminv1.TransferLeaderRequest{Target: &adminv1.TransferLeaderRequest_Meta{Meta: true}, Timeout: durationpb.New(-time.Second)},
			connect.CodeInvalidArgument, "timeout must be positive"},
	} {
		_, err := doTransfer(cl, tc.req)
		wantErr(t, err, tc.code, tc.msg)
	}
	c.setMetaLeader(0)
	_, err := doTransfer(cl, transferMeta(3))
	wantErr(t, err, connect.CodeUnavailable, "__meta has no leader")
}

func TestTransferPartition(t *testing.T) {
	c, _, cl := threeNodes(t)
	changes := mustTransfer(t, cl, transferPart("orders", 1, 3))
	if len(changes) != 1 {
		t.Fatalf("changes %v", changes)
	}
	wantChange(t, changes[0], "orders", 1, 2, 3, 2)
	if p := c.store.State().Partition("orders", 1); p.Leader != 3 || p.LeaderEpoch != 2 {
		t.Errorf("orders/1 now %+v", p)
	}
	// Leaders now: node 1 three, node 2 two, node 3 three. The best
	// candidate for orders/0 (ISR 1,2,3) is node 2.
	changes = mustTransfer(t, cl, transferPart("orders", 0, 0))
	wantChange(t, changes[0], "orders", 0, 1, 2, 2)
	if changes := mustTransfer(t, cl, transferPart("orders", 0, 2)); len(changes) != 0 {
		t.Errorf("moving to the leader changed %v", changes)
	}
}

func TestTransferPartitionErrors(t *testing.T) {
	c, _, cl := threeNodes(t)
	c.createTopic("audit", 1, 1, 3)
	c.setISR("orders", 2, []int32{3, 1})
	for _, tc := range []struct {
		req  *adminv1.TransferLeaderRequest
		code connect.Code
		msg  string
	}{
		{transferPart("nope", 0, 2), connect.CodeNotFound, "unknown topic nope"},
		{transferPart("orders", 9, 2), connect.CodeNotFound, "unknown partition orders/9"},
		{transferPart("orders", 0, 7), connect.CodeNotFound, "unknown node 7"},
		{transferPart("payments", 1, 1), connect.CodeFailedPrecondition, "node 1 is not a replica of payments/1"},
		{transferPart("orders", 2, 2), connect.CodeFailedPrecondition, "node 2 is not in sync for orders/2"},
		{transferPart("audit", 0, 0), connect.CodeFailedPrecondition, "no other live in-sync replica of audit/0"},
		{transferPart("orders", 0, -1), connect.CodeInvalidArgument, "to_node_id must be a node id"},
	} {
		_, err := doTransfer(cl, tc.req)
		wantErr(t, err, tc.code, tc.msg)
	}
	c.setAlive(2, false)
	_, err := doTransfer(cl, transferPart("orders", 0, 2))
	wantErr(t, err, connect.CodeFailedPrecondition, "node 2 is not alive")
	c.setAlive(1, false)
	_, err = doTransfer(cl, transferPart("orders", 0, 3))
	wantErr(t, err, connect.CodeFailedPrecondition, "orders/0 has no live leader")
}

func TestTransferNode(t *testing.T) {
	c, _, cl := threeNodes(t)
	c.createTopic("audit", 1, 1, 3) // audit/0 has no other replica: it stays
	changes := mustTransfer(t, cl, transferNode(1, 0))
	if len(changes) != 4 {
		t.Fatalf("changes %v", changes)
	}
	if changes[0].GetTopic() != "__meta" || changes[0].GetPreviousLeaderId() != 1 {
		t.Errorf("__meta should move first: %v", changes)
	}
	st := c.store.State()
	leaders, _ := leaderCounts(st)
	if leaders[1] != 1 || st.Partition("audit", 0).Leader != 1 {
		t.Errorf("node 1 still leads %d partitions (want audit/0 only)", leaders[1])
	}
	// Before: node 2 led three, node 3 two. __consumer_offsets/0 goes to
	// node 3 (fewest), orders/0 to node 2 (tie, lower id), payments/0
	// (replicas 1 and 2) to node 2.
	if leaders[2] != 5 || leaders[3] != 3 {
		t.Errorf("leaders %v", leaders)
	}
	if got := c.node(1).Meta().LeaderID; got == 1 {
		t.Error("node 1 still leads __meta")
	}
	for _, ch := range changes {
		if ch.GetNewLeaderId() == 1 || ch.GetPreviousLeaderId() != 1 {
			t.Errorf("change %v", ch)
		}
	}
}

func TestTransferNodeToOneTarget(t *testing.T) {
	c, _, cl := threeNodes(t)
	// payments/0 lives on 1 and 2: node 3 cannot take it, so nothing moves.
	_, err := doTransfer(cl, transferNode(1, 3))
	wantErr(t, err, connect.CodeFailedPrecondition, "node 3 is not a replica of payments/0")
	if c.node(1).Meta().LeaderID != 1 || c.count("transfer") != 0 {
		t.Error("something moved before the check failed")
	}
	changes := mustTransfer(t, cl, transferNode(1, 2))
	if len(changes) != 4 {
		t.Fatalf("changes %v", changes)
	}
	for _, ch := range changes {
		if ch.GetNewLeaderId() != 2 {
			t.Errorf("change %v", ch)
		}
	}
	_, err = doTransfer(cl, transferNode(9, 0))
	wantErr(t, err, connect.CodeNotFound, "unknown node 9")
}

func TestTransferTimesOut(t *testing.T) {
	c, _, cl := threeNodes(t)
	c.mu.Lock()
	c.stuck = true
	c.mu.Unlock()
	req := transferPart("orders", 0, 2)
	req.Timeout = durationpb.New(150 * time.Millisecond)
	start := time.Now()
	_, err := doTransfer(cl, req)
	wantErr(t, err, connect.CodeDeadlineExceeded, "orders/0: leadership did not move to node 2 within 150ms")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("answered after %s", d)
	}
}

func TestTransferWaitsForTheMetadata(t *testing.T) {
	c, _, cl := threeNodes(t)
	c.mu.Lock()
	c.transferDelay = 100 * time.Millisecond
	c.mu.Unlock()
	changes := mustTransfer(t, cl, transferPart("orders", 0, 3))
	wantChange(t, changes[0], "orders", 0, 1, 3, 2)
	if p := c.store.State().Partition("orders", 0); p.Leader != 3 {
		t.Errorf("answered before the metadata showed the new leader: %+v", p)
	}
}
