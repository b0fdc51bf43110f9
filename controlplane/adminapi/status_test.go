package adminapi

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/chronik-stream/chronik/controlplane/config"
	adminv1 "github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1"
	"github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1/adminv1connect"
)

// threeNodes is the guide's cluster: three nodes with both roles, node 1
// leading __meta, orders (3 partitions, RF 3), payments (2 partitions, RF
// 2: payments/1 lives on nodes 2 and 3) and __consumer_offsets. Every node
// runs a Service; node 1's is returned.
func threeNodes(t *testing.T) (*fakeCluster, *Service, adminv1connect.AdminServiceClient) {
	t.Helper()
	c := newFakeCluster(t, 3)
	c.createTopic("orders", 3, 3, 3)
	c.createTopic("payments", 2, 2, 3)
	c.createTopic("__consumer_offsets", 3, 3, 3)
	var s *Service
	var cl adminv1connect.AdminServiceClient
	for id := int32(3); id >= 1; id-- { // every node serves; node 1's is returned
		s = startService(t, c.node(id), func(cfg *Config) { cfg.MinInsyncReplicas = 2 })
		cl, _, _ = serve(t, c, id, s)
	}
	return c, s, cl
}

func status(t *testing.T, cl adminv1connect.AdminServiceClient, topics ...string) *connect.Response[adminv1.GetClusterStatusResponse] {
	t.Helper()
	resp, err := cl.GetClusterStatus(context.Background(), connect.NewRequest(&adminv1.GetClusterStatusRequest{Topics: topics}))
	if err != nil {
		t.Fatalf("get cluster status: %v", err)
	}
	return resp
}

func TestClusterStatusHealthy(t *testing.T) {
	_, _, cl := threeNodes(t)
	resp := status(t, cl)
	st := resp.Msg
	if st.GetClusterId() != "fake-cluster" {
		t.Errorf("cluster id %q", st.GetClusterId())
	}
	if len(st.GetNodes()) != 3 {
		t.Fatalf("nodes %v", st.GetNodes())
	}
	for i, n := range st.GetNodes() {
		id := int32(i + 1)
		if n.GetNodeId() != id || !n.GetAlive() || n.GetState() != adminv1.NodeState_NODE_STATE_ACTIVE ||
			n.GetIsMetaLeader() != (id == 1) || len(n.GetRoles()) != 2 || n.GetKafkaAddr() == "" || n.GetRaftAddr() == "" {
			t.Errorf("node %d: %v", id, n)
		}
	}
	// Leaders: orders 1,2,3; payments 1,2; offsets 1,2,3.
	if got := []int32{st.Nodes[0].GetLeaderCount(), st.Nodes[1].GetLeaderCount(), st.Nodes[2].GetLeaderCount()}; !slices.Equal(got, []int32{3, 3, 2}) {
		t.Errorf("leader counts %v", got)
	}
	if got := st.Nodes[0].GetReplicaCount(); got != 7 {
		t.Errorf("node 1 hosts %d replicas, want 7", got)
	}
	m := st.GetMeta()
	if m.GetLeaderId() != 1 || m.GetTerm() != 5 || m.GetQuorumSize() != 2 || m.GetClusterSize() != 3 || m.GetVotersAlive() != 3 {
		t.Errorf("meta %v", m)
	}
	sum := st.GetPartitions()
	if sum.GetTotal() != 8 || sum.GetUnderReplicated() != 0 || sum.GetOffline() != 0 || sum.GetUnderMinIsr() != 0 {
		t.Errorf("summary %v", sum)
	}
	var names []string
	for _, tp := range st.GetTopics() {
		names = append(names, tp.GetTopic())
	}
	if !slices.Equal(names, []string{"__consumer_offsets", "orders", "payments"}) {
		t.Errorf("topics %v", names)
	}
	p := st.GetTopics()[2].GetPartitions()[1]
	if p.GetPartition() != 1 || p.GetLeaderId() != 2 || p.GetLeaderEpoch() != 1 || !slices.Equal(p.GetReplicas(), []int32{2, 3}) || !slices.Equal(p.GetIsr(), []int32{2, 3}) {
		t.Errorf("payments/1: %v", p)
	}
	if got := resp.Header().Get(InternalTopicsHeader); got != "__consumer_offsets" {
		t.Errorf("internal topics header %q", got)
	}
	if got := resp.Header().Get(StatusSourceHeader); got != "controller" {
		t.Errorf("status source %q", got)
	}
}

func TestClusterStatusTopicFilter(t *testing.T) {
	_, _, cl := threeNodes(t)
	st := status(t, cl, "payments").Msg
	if len(st.GetTopics()) != 1 || st.GetTopics()[0].GetTopic() != "payments" {
		t.Errorf("topics %v", st.GetTopics())
	}
	if st.GetPartitions().GetTotal() != 8 {
		t.Errorf("summary counts %d partitions, want all 8", st.GetPartitions().GetTotal())
	}
	_, err := cl.GetClusterStatus(context.Background(), connect.NewRequest(&adminv1.GetClusterStatusRequest{Topics: []string{"nope"}}))
	wantErr(t, err, connect.CodeNotFound, "unknown topic nope")
}

func TestClusterStatusDegraded(t *testing.T) {
	c, _, cl := threeNodes(t)
	c.createTopic("audit", 1, 1, 3) // audit/0 on node 1 only
	c.setAlive(1, false)
	c.setMetaLeader(2)
	c.setISR("orders", 0, []int32{2, 3})
	c.setISR("orders", 1, []int32{2})
	st := status(t, cl).Msg
	if n := st.GetNodes()[0]; n.GetAlive() || n.GetIsMetaLeader() {
		t.Errorf("node 1: %v", n)
	}
	if !st.GetNodes()[1].GetIsMetaLeader() {
		t.Error("node 2 should lead __meta")
	}
	if m := st.GetMeta(); m.GetVotersAlive() != 2 || m.GetLeaderId() != 2 {
		t.Errorf("meta %v", m)
	}
	// Offline: every partition led by node 1 (orders/0, payments/0,
	// __consumer_offsets/0, audit/0). Under-replicated: orders/0, orders/1.
	// Below min ISR 2: orders/1 (ISR 2 alone) and audit/0 (RF 1).
	sum := st.GetPartitions()
	if sum.GetTotal() != 9 || sum.GetOffline() != 4 || sum.GetUnderReplicated() != 2 || sum.GetUnderMinIsr() != 2 {
		t.Errorf("summary %v", sum)
	}
}

func TestClusterStatusControllerOnlyAndUnstartedPeers(t *testing.T) {
	c, _, cl := threeNodes(t)
	// Node 4 is a controller-only peer: it never registers as a broker and
	// is alive while the __meta leader is in contact with it. Node 5 is in
	// cluster.toml but was never started.
	c.mu.Lock()
	c.peers = append(c.peers,
		Peer{ID: 4, Roles: []config.Role{config.RoleController}, KafkaAddr: "127.0.0.4:9092", RaftAddr: "127.0.0.4:9093"},
		Peer{ID: 5, KafkaAddr: "127.0.0.5:9092", RaftAddr: "127.0.0.5:9093", Rack: "r5"})
	c.meta.VotersAlive = append(c.meta.VotersAlive, 4)
	c.mu.Unlock()
	nodes := status(t, cl).Msg.GetNodes()
	if len(nodes) != 5 {
		t.Fatalf("nodes %v", nodes)
	}
	if n := nodes[3]; !n.GetAlive() || !slices.Equal(n.GetRoles(), []adminv1.NodeRole{adminv1.NodeRole_NODE_ROLE_CONTROLLER}) {
		t.Errorf("controller-only node 4: %v", n)
	}
	if n := nodes[4]; n.GetAlive() || n.GetRack() != "r5" || n.GetKafkaAddr() != "127.0.0.5:9092" {
		t.Errorf("unstarted node 5: %v", n)
	}
	list, err := cl.ListNodes(context.Background(), connect.NewRequest(&adminv1.ListNodesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Msg.GetNodes()) != 5 || list.Msg.GetNodes()[4].GetNodeId() != 5 {
		t.Errorf("list nodes %v", list.Msg.GetNodes())
	}
}

// wantErr checks a Connect error's code and message.
func wantErr(t *testing.T, err error, code connect.Code, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v %q", code, msg)
	}
	if got := connect.CodeOf(err); got != code {
		t.Errorf("code %v (%v), want %v", got, err, code)
	}
	var ce *connect.Error
	if !errors.As(err, &ce) || !strings.Contains(ce.Message(), msg) {
		t.Errorf("message %q, want it to contain %q", errorMessage(err), msg)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
