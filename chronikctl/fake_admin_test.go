package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1"
	"github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1/adminv1connect"
)

// fakeAdmin is an in-memory AdminService with a small cluster model: enough
// behaviour (validation, leader moves, a rebalance that advances one step
// per status call) to drive every chronikctl admin command through real
// Connect RPC over HTTP.
type fakeAdmin struct {
	adminv1connect.UnimplementedAdminServiceHandler

	mu     sync.Mutex
	st     *adminv1.GetClusterStatusResponse // nodes, meta and topics; the summary is derived
	plan   []*adminv1.RebalanceMove          // what StartRebalance proposes
	reb    *adminv1.RebalanceStatus
	nextID int
	clock  time.Time // advances one second per rebalance event

	statusErr error // when set, GetClusterStatus fails with it
	failStep  int32 // when > 0, a rebalance fails once this many steps are done
}

var (
	roleBoth   = []adminv1.NodeRole{adminv1.NodeRole_NODE_ROLE_CONTROLLER, adminv1.NodeRole_NODE_ROLE_BROKER}
	roleBroker = []adminv1.NodeRole{adminv1.NodeRole_NODE_ROLE_BROKER}
)

func fakeNode(id int32, roles []adminv1.NodeRole) *adminv1.Node {
	return &adminv1.Node{
		NodeId: id, Roles: roles,
		KafkaAddr: fmt.Sprintf("127.0.0.%d:9092", id), RaftAddr: fmt.Sprintf("127.0.0.%d:9093", id),
		Alive: true, State: adminv1.NodeState_NODE_STATE_ACTIVE,
	}
}

func part(p, leader, epoch int32, replicas, isr []int32) *adminv1.PartitionStatus {
	return &adminv1.PartitionStatus{Partition: p, LeaderId: leader, LeaderEpoch: epoch, Replicas: replicas, Isr: isr}
}

// healthyCluster is the guide's three-node cluster with an orders topic.
func healthyCluster() *adminv1.GetClusterStatusResponse {
	st := &adminv1.GetClusterStatusResponse{
		ClusterId: "chronik-test",
		Nodes:     []*adminv1.Node{fakeNode(1, roleBoth), fakeNode(2, roleBoth), fakeNode(3, roleBoth)},
		Meta: &adminv1.MetaStatus{LeaderId: 1, Term: 5, CommitIndex: 12345, AppliedIndex: 12345,
			QuorumSize: 2, ClusterSize: 3, VotersAlive: 3},
		Topics: []*adminv1.TopicStatus{
			{Topic: "orders", Partitions: []*adminv1.PartitionStatus{
				part(0, 1, 3, []int32{1, 2, 3}, []int32{1, 2, 3}),
				part(1, 2, 3, []int32{2, 3, 1}, []int32{2, 3, 1}),
				part(2, 3, 4, []int32{3, 1, 2}, []int32{3, 1, 2}),
			}},
			{Topic: "payments", Partitions: []*adminv1.PartitionStatus{
				part(0, 2, 1, []int32{2, 3, 1}, []int32{2, 3, 1}),
			}},
		},
	}
	st.Nodes[0].IsMetaLeader = true
	return st
}

// degradedCluster is healthyCluster after node 3 died: its leaderships
// moved, ISRs shrank, and the single-replica audit topic on it is offline.
func degradedCluster() *adminv1.GetClusterStatusResponse {
	st := healthyCluster()
	st.Nodes[2].Alive = false
	st.Meta.VotersAlive = 2
	st.Meta.Term = 6
	st.Topics[0].Partitions = []*adminv1.PartitionStatus{
		part(0, 1, 3, []int32{1, 2, 3}, []int32{1, 2}),
		part(1, 2, 3, []int32{2, 3, 1}, []int32{2, 1}),
		part(2, 1, 5, []int32{3, 1, 2}, []int32{1, 2}),
	}
	st.Topics = append(st.Topics, &adminv1.TopicStatus{Topic: "audit", Partitions: []*adminv1.PartitionStatus{
		part(0, 0, 2, []int32{3}, nil),
	}})
	return st
}

func newFakeAdmin(st *adminv1.GetClusterStatusResponse) *fakeAdmin {
	return &fakeAdmin{
		st:    st,
		clock: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		plan: []*adminv1.RebalanceMove{
			{Topic: "orders", Partition: 0, AddReplica: 4, RemoveReplica: 1, NewLeaderId: 4},
			{Topic: "orders", Partition: 1, AddReplica: 4, RemoveReplica: 3},
			{Topic: "payments", Partition: 0, NewLeaderId: 3},
		},
	}
}

// serve starts the fake on 127.0.0.1 and returns its host:port.
func (f *fakeAdmin) serve(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(adminv1connect.NewAdminServiceHandler(f))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func (f *fakeAdmin) tick() *timestamppb.Timestamp {
	f.clock = f.clock.Add(time.Second)
	return timestamppb.New(f.clock)
}

// summary derives the partition counts from the topics. Caller holds f.mu.
func (f *fakeAdmin) summary() *adminv1.PartitionSummary {
	s := &adminv1.PartitionSummary{}
	for _, t := range f.st.GetTopics() {
		for _, p := range t.GetPartitions() {
			s.Total++
			if p.GetLeaderId() == 0 {
				s.Offline++
			}
			if len(p.GetIsr()) < len(p.GetReplicas()) {
				s.UnderReplicated++
			}
			if len(p.GetIsr()) < min(2, len(p.GetReplicas())) || len(p.GetIsr()) == 0 {
				s.UnderMinIsr++
			}
		}
	}
	return s
}

// node finds a node. Caller holds f.mu.
func (f *fakeAdmin) node(id int32) (*adminv1.Node, error) {
	for _, n := range f.st.GetNodes() {
		if n.GetNodeId() == id {
			return n, nil
		}
	}
	return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("node %d not found", id))
}

// countLeaders refreshes every node's leader and replica counts. Caller
// holds f.mu.
func (f *fakeAdmin) countLeaders() {
	for _, n := range f.st.GetNodes() {
		n.LeaderCount, n.ReplicaCount = 0, 0
		for _, t := range f.st.GetTopics() {
			for _, p := range t.GetPartitions() {
				if p.GetLeaderId() == n.GetNodeId() {
					n.LeaderCount++
				}
				if slices.Contains(p.GetReplicas(), n.GetNodeId()) {
					n.ReplicaCount++
				}
			}
		}
	}
}

func (f *fakeAdmin) GetClusterStatus(_ context.Context, req *connect.Request[adminv1.GetClusterStatusRequest]) (*connect.Response[adminv1.GetClusterStatusResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.statusErr != nil {
		return nil, f.statusErr
	}
	f.countLeaders()
	out := proto.Clone(f.st).(*adminv1.GetClusterStatusResponse)
	out.Partitions = f.summary()
	if want := req.Msg.GetTopics(); len(want) > 0 {
		out.Topics = slices.DeleteFunc(out.Topics, func(t *adminv1.TopicStatus) bool {
			return !slices.Contains(want, t.GetTopic())
		})
	}
	return connect.NewResponse(out), nil
}

func (f *fakeAdmin) ListNodes(context.Context, *connect.Request[adminv1.ListNodesRequest]) (*connect.Response[adminv1.ListNodesResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.countLeaders()
	nodes := make([]*adminv1.Node, len(f.st.GetNodes()))
	for i, n := range f.st.GetNodes() {
		nodes[i] = proto.Clone(n).(*adminv1.Node)
	}
	return connect.NewResponse(&adminv1.ListNodesResponse{Nodes: nodes}), nil
}

// moveMeta hands __meta to to (0: the lowest other live voter). Caller
// holds f.mu.
func (f *fakeAdmin) moveMeta(to int32) (*adminv1.LeadershipChange, error) {
	m := f.st.GetMeta()
	if to == 0 {
		for _, n := range f.st.GetNodes() {
			if n.GetNodeId() != m.GetLeaderId() && n.GetAlive() && slices.Contains(n.GetRoles(), adminv1.NodeRole_NODE_ROLE_CONTROLLER) {
				to = n.GetNodeId()
				break
			}
		}
		if to == 0 {
			return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("no other live __meta voter"))
		}
	}
	n, err := f.node(to)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(n.GetRoles(), adminv1.NodeRole_NODE_ROLE_CONTROLLER) {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("node %d is not a __meta voter", to))
	}
	if to == m.GetLeaderId() {
		return nil, nil
	}
	ch := &adminv1.LeadershipChange{Topic: "__meta", PreviousLeaderId: m.GetLeaderId(), NewLeaderId: to, Term: m.GetTerm() + 1}
	m.LeaderId, m.Term = to, m.GetTerm()+1
	for _, x := range f.st.GetNodes() {
		x.IsMetaLeader = x.GetNodeId() == to
	}
	return ch, nil
}

// movePartition hands a partition to to (0: the first other in-sync
// replica). Caller holds f.mu.
func (f *fakeAdmin) movePartition(topic string, p *adminv1.PartitionStatus, to int32) (*adminv1.LeadershipChange, error) {
	name := fmt.Sprintf("%s/%d", topic, p.GetPartition())
	if to == 0 {
		for _, r := range p.GetIsr() {
			if r != p.GetLeaderId() {
				to = r
				break
			}
		}
		if to == 0 {
			return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("no other in-sync replica of %s", name))
		}
	}
	if _, err := f.node(to); err != nil {
		return nil, err
	}
	if !slices.Contains(p.GetReplicas(), to) {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("node %d is not a replica of %s", to, name))
	}
	if !slices.Contains(p.GetIsr(), to) {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("node %d is not in sync for %s", to, name))
	}
	if to == p.GetLeaderId() {
		return nil, nil
	}
	ch := &adminv1.LeadershipChange{Topic: topic, Partition: p.GetPartition(), PreviousLeaderId: p.GetLeaderId(),
		NewLeaderId: to, Term: uint64(p.GetLeaderEpoch() + 1)}
	p.LeaderId, p.LeaderEpoch = to, p.GetLeaderEpoch()+1
	return ch, nil
}

// moveAllFrom moves every leadership node holds. Caller holds f.mu.
func (f *fakeAdmin) moveAllFrom(node, to int32) ([]*adminv1.LeadershipChange, error) {
	var changes []*adminv1.LeadershipChange
	if f.st.GetMeta().GetLeaderId() == node {
		ch, err := f.moveMeta(to)
		if err != nil {
			return nil, err
		}
		changes = append(changes, ch)
	}
	for _, t := range f.st.GetTopics() {
		for _, p := range t.GetPartitions() {
			if p.GetLeaderId() != node {
				continue
			}
			ch, err := f.movePartition(t.GetTopic(), p, to)
			if err != nil {
				return nil, err
			}
			changes = append(changes, ch)
		}
	}
	return changes, nil
}

func (f *fakeAdmin) findPartition(ref *adminv1.PartitionRef) (*adminv1.PartitionStatus, error) {
	for _, t := range f.st.GetTopics() {
		if t.GetTopic() != ref.GetTopic() {
			continue
		}
		for _, p := range t.GetPartitions() {
			if p.GetPartition() == ref.GetPartition() {
				return p, nil
			}
		}
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("partition %s/%d not found", ref.GetTopic(), ref.GetPartition()))
	}
	return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("topic %s not found", ref.GetTopic()))
}

func (f *fakeAdmin) TransferLeader(_ context.Context, req *connect.Request[adminv1.TransferLeaderRequest]) (*connect.Response[adminv1.TransferLeaderResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.Msg.GetTimeout().AsDuration() <= 0 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("timeout must be positive"))
	}
	to := req.Msg.GetToNodeId()
	var changes []*adminv1.LeadershipChange
	switch target := req.Msg.GetTarget().(type) {
	case *adminv1.TransferLeaderRequest_Meta:
		ch, err := f.moveMeta(to)
		if err != nil {
			return nil, err
		}
		changes = append(changes, ch)
	case *adminv1.TransferLeaderRequest_Partition:
		p, err := f.findPartition(target.Partition)
		if err != nil {
			return nil, err
		}
		ch, err := f.movePartition(target.Partition.GetTopic(), p, to)
		if err != nil {
			return nil, err
		}
		changes = append(changes, ch)
	case *adminv1.TransferLeaderRequest_NodeId:
		if _, err := f.node(target.NodeId); err != nil {
			return nil, err
		}
		var err error
		if changes, err = f.moveAllFrom(target.NodeId, to); err != nil {
			return nil, err
		}
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("no target"))
	}
	changes = slices.DeleteFunc(changes, func(c *adminv1.LeadershipChange) bool { return c == nil })
	return connect.NewResponse(&adminv1.TransferLeaderResponse{Changes: changes}), nil
}

// start begins executing moves as a rebalance. Caller holds f.mu.
func (f *fakeAdmin) start(moves []*adminv1.RebalanceMove) (string, error) {
	if f.reb.GetState() == adminv1.RebalanceState_REBALANCE_STATE_RUNNING {
		return "", connect.NewError(connect.CodeFailedPrecondition,
			fmt.Errorf("rebalance %s is already running", f.reb.GetRebalanceId()))
	}
	f.nextID++
	id := fmt.Sprintf("rb-%d", f.nextID)
	f.reb = &adminv1.RebalanceStatus{RebalanceId: id, State: adminv1.RebalanceState_REBALANCE_STATE_RUNNING,
		StepsTotal: int32(len(moves)), CurrentMove: moves[0], StartedAt: f.tick()}
	f.plan = moves
	return id, nil
}

func (f *fakeAdmin) StartRebalance(_ context.Context, req *connect.Request[adminv1.StartRebalanceRequest]) (*connect.Response[adminv1.StartRebalanceResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &adminv1.StartRebalanceResponse{Moves: f.plan}
	if !req.Msg.GetDryRun() && len(f.plan) > 0 {
		id, err := f.start(f.plan)
		if err != nil {
			return nil, err
		}
		resp.RebalanceId = id
	}
	return connect.NewResponse(resp), nil
}

// status returns the selected rebalance, advancing a running one by a
// step. Caller holds f.mu.
func (f *fakeAdmin) status(id string) (*adminv1.RebalanceStatus, error) {
	if f.reb == nil {
		if id != "" {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("rebalance %s not found", id))
		}
		return &adminv1.RebalanceStatus{State: adminv1.RebalanceState_REBALANCE_STATE_IDLE}, nil
	}
	if id != "" && id != f.reb.GetRebalanceId() {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("rebalance %s not found", id))
	}
	return f.reb, nil
}

func (f *fakeAdmin) GetRebalanceStatus(_ context.Context, req *connect.Request[adminv1.GetRebalanceStatusRequest]) (*connect.Response[adminv1.GetRebalanceStatusResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := f.status(req.Msg.GetRebalanceId())
	if err != nil {
		return nil, err
	}
	out := proto.Clone(st).(*adminv1.RebalanceStatus)
	if st.GetState() == adminv1.RebalanceState_REBALANCE_STATE_RUNNING {
		st.StepsDone++
		if st.StepsDone == f.failStep {
			st.State, st.FinishedAt = adminv1.RebalanceState_REBALANCE_STATE_FAILED, f.tick()
			st.Error = fmt.Sprintf("move %s: replica did not catch up", describeMove(st.GetCurrentMove()))
			st.CurrentMove = nil
		} else if st.StepsDone == st.StepsTotal {
			st.State, st.CurrentMove, st.FinishedAt = adminv1.RebalanceState_REBALANCE_STATE_DONE, nil, f.tick()
		} else {
			st.CurrentMove = f.plan[st.StepsDone]
		}
	}
	return connect.NewResponse(&adminv1.GetRebalanceStatusResponse{Status: out}), nil
}

func (f *fakeAdmin) CancelRebalance(_ context.Context, req *connect.Request[adminv1.CancelRebalanceRequest]) (*connect.Response[adminv1.CancelRebalanceResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := f.status(req.Msg.GetRebalanceId())
	if err != nil {
		return nil, err
	}
	if st.GetState() != adminv1.RebalanceState_REBALANCE_STATE_RUNNING {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("no rebalance is running"))
	}
	st.State, st.CurrentMove, st.FinishedAt = adminv1.RebalanceState_REBALANCE_STATE_CANCELLED, nil, f.tick()
	return connect.NewResponse(&adminv1.CancelRebalanceResponse{Status: proto.Clone(st).(*adminv1.RebalanceStatus)}), nil
}

func (f *fakeAdmin) DrainNode(_ context.Context, req *connect.Request[adminv1.DrainNodeRequest]) (*connect.Response[adminv1.DrainNodeResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.node(req.Msg.GetNodeId())
	if err != nil {
		return nil, err
	}
	changes, err := f.moveAllFrom(n.GetNodeId(), 0)
	if err != nil {
		return nil, err
	}
	n.State = adminv1.NodeState_NODE_STATE_DRAINED
	f.countLeaders()
	return connect.NewResponse(&adminv1.DrainNodeResponse{Node: proto.Clone(n).(*adminv1.Node), Changes: changes}), nil
}

func (f *fakeAdmin) DecommissionNode(_ context.Context, req *connect.Request[adminv1.DecommissionNodeRequest]) (*connect.Response[adminv1.DecommissionNodeResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.node(req.Msg.GetNodeId())
	if err != nil {
		return nil, err
	}
	var moves []*adminv1.RebalanceMove
	for _, t := range f.st.GetTopics() {
		for _, p := range t.GetPartitions() {
			if !slices.Contains(p.GetReplicas(), n.GetNodeId()) {
				continue
			}
			for _, cand := range f.st.GetNodes() {
				if cand.GetAlive() && !slices.Contains(p.GetReplicas(), cand.GetNodeId()) {
					m := &adminv1.RebalanceMove{Topic: t.GetTopic(), Partition: p.GetPartition(),
						AddReplica: cand.GetNodeId(), RemoveReplica: n.GetNodeId()}
					if p.GetLeaderId() == n.GetNodeId() {
						m.NewLeaderId = cand.GetNodeId()
					}
					moves = append(moves, m)
					break
				}
			}
		}
	}
	resp := &adminv1.DecommissionNodeResponse{Moves: moves}
	if req.Msg.GetDryRun() {
		return connect.NewResponse(resp), nil
	}
	if len(moves) == 0 {
		return nil, connect.NewError(connect.CodeFailedPrecondition,
			fmt.Errorf("no live node can take the replicas of node %d", n.GetNodeId()))
	}
	if resp.RebalanceId, err = f.start(moves); err != nil {
		return nil, err
	}
	n.State = adminv1.NodeState_NODE_STATE_DECOMMISSIONING
	return connect.NewResponse(resp), nil
}

func (f *fakeAdmin) AddNode(_ context.Context, req *connect.Request[adminv1.AddNodeRequest]) (*connect.Response[adminv1.AddNodeResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := req.Msg
	if _, err := f.node(m.GetNodeId()); err == nil {
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("node %d already exists", m.GetNodeId()))
	}
	host, _, err := net.SplitHostPort(m.GetKafkaAddr())
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("kafka_addr %q: %w", m.GetKafkaAddr(), err))
	}
	n := &adminv1.Node{NodeId: m.GetNodeId(), Roles: m.GetRoles(), KafkaAddr: m.GetKafkaAddr(),
		RaftAddr: net.JoinHostPort(host, fmt.Sprint(m.GetRaftPort())), Rack: m.GetRack(),
		State: adminv1.NodeState_NODE_STATE_ACTIVE}
	f.st.Nodes = append(f.st.Nodes, n)
	return connect.NewResponse(&adminv1.AddNodeResponse{Node: proto.Clone(n).(*adminv1.Node)}), nil
}
