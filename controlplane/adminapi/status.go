package adminapi

import (
	"cmp"
	"context"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"connectrpc.com/connect"

	"github.com/chronik-stream/chronik/controlplane/config"
	"github.com/chronik-stream/chronik/controlplane/metadata"
	adminv1 "github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1"
	"github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1/adminv1connect"
)

// GetClusterStatus reports nodes, __meta and every partition, from the
// active controller when it can be reached and from this node's image
// otherwise.
func (s *Service) GetClusterStatus(ctx context.Context, req *connect.Request[adminv1.GetClusterStatusRequest]) (*connect.Response[adminv1.GetClusterStatusResponse], error) {
	return fromController(ctx, s, req, adminv1connect.AdminServiceClient.GetClusterStatus, s.clusterStatus)
}

// ListNodes lists the nodes, like GetClusterStatus.
func (s *Service) ListNodes(ctx context.Context, req *connect.Request[adminv1.ListNodesRequest]) (*connect.Response[adminv1.ListNodesResponse], error) {
	return fromController(ctx, s, req, adminv1connect.AdminServiceClient.ListNodes,
		func(context.Context, *adminv1.ListNodesRequest) (*adminv1.ListNodesResponse, http.Header, error) {
			return &adminv1.ListNodesResponse{Nodes: s.nodes(s.b.State(), s.b.Meta())}, nil, nil
		})
}

func (s *Service) clusterStatus(_ context.Context, req *adminv1.GetClusterStatusRequest) (*adminv1.GetClusterStatusResponse, http.Header, error) {
	st, meta := s.b.State(), s.b.Meta()
	for _, name := range req.GetTopics() {
		if st.Topics[name] == nil {
			return nil, nil, errorf(ErrUnknownTopic, "unknown topic %s", name)
		}
	}
	resp := &adminv1.GetClusterStatusResponse{
		ClusterId:  st.ClusterID,
		Nodes:      s.nodes(st, meta),
		Meta:       metaStatusProto(meta),
		Partitions: &adminv1.PartitionSummary{},
	}
	var internal []string
	for _, t := range st.SortedTopics() {
		minISR := s.minInsync(t)
		ts := &adminv1.TopicStatus{Topic: t.Name}
		for _, p := range t.Partitions {
			sum := resp.Partitions
			sum.Total++
			if len(p.ISR) < len(p.Replicas) {
				sum.UnderReplicated++
			}
			if !leaderLive(st, &p) {
				sum.Offline++
			}
			if len(p.ISR) < minISR {
				sum.UnderMinIsr++
			}
			ts.Partitions = append(ts.Partitions, &adminv1.PartitionStatus{
				Partition: p.ID, LeaderId: max(p.Leader, 0), LeaderEpoch: p.LeaderEpoch,
				Replicas: slices.Clone(p.Replicas), Isr: slices.Clone(p.ISR),
			})
		}
		if len(req.GetTopics()) > 0 && !slices.Contains(req.GetTopics(), t.Name) {
			continue
		}
		resp.Topics = append(resp.Topics, ts)
		if isInternal(t) {
			internal = append(internal, t.Name)
		}
	}
	hdr := http.Header{}
	if len(internal) > 0 {
		hdr.Set(InternalTopicsHeader, strings.Join(internal, ","))
	}
	return resp, hdr, nil
}

// isInternal reports whether a topic is one of the cluster's own
// (__consumer_offsets, __transaction_state).
func isInternal(t *metadata.Topic) bool {
	return t.Internal || strings.HasPrefix(t.Name, "__")
}

// minInsync is a topic's min.insync.replicas.
func (s *Service) minInsync(t *metadata.Topic) int {
	if v, ok := t.Configs["min.insync.replicas"]; ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	return s.cfg.MinInsyncReplicas
}

// leaderLive reports whether a partition has a leader on a live broker.
func leaderLive(st *metadata.State, p *metadata.Partition) bool {
	return p.Leader > 0 && brokerAlive(st, p.Leader)
}

func brokerAlive(st *metadata.State, id int32) bool {
	b := st.Brokers[id]
	return b != nil && b.Alive
}

func metaStatusProto(m MetaStatus) *adminv1.MetaStatus {
	return &adminv1.MetaStatus{
		LeaderId: m.LeaderID, Term: m.Term, CommitIndex: m.CommitIndex, AppliedIndex: m.AppliedIndex,
		QuorumSize: m.QuorumSize, ClusterSize: m.ClusterSize, VotersAlive: int32(len(m.VotersAlive)),
	}
}

// leaderCounts counts the partitions each node leads and hosts.
func leaderCounts(st *metadata.State) (leaders, replicas map[int32]int) {
	leaders, replicas = map[int32]int{}, map[int32]int{}
	for _, t := range st.Topics {
		for _, p := range t.Partitions {
			if p.Leader > 0 {
				leaders[p.Leader]++
			}
			for _, r := range p.Replicas {
				replicas[r]++
			}
		}
	}
	return leaders, replicas
}

// nodes lists the configured peers and registered brokers in id order.
func (s *Service) nodes(st *metadata.State, meta MetaStatus) []*adminv1.Node {
	peers := map[int32]Peer{}
	for _, p := range s.b.Peers() {
		peers[p.ID] = p
	}
	ids := make([]int32, 0, len(peers)+len(st.Brokers))
	for id := range peers {
		ids = append(ids, id)
	}
	for id := range st.Brokers {
		if _, ok := peers[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, cmp.Compare)
	leaders, replicas := leaderCounts(st)
	out := make([]*adminv1.Node, 0, len(ids))
	for _, id := range ids {
		p, isPeer := peers[id]
		n := nodeProto(id, p, isPeer, st.Brokers[id], meta)
		n.LeaderCount, n.ReplicaCount = int32(leaders[id]), int32(replicas[id])
		n.State = nodeState(st.Brokers[id], leaders[id])
		out = append(out, n)
	}
	return out
}

// nodeProto describes a node from its peer entry and its broker record,
// preferring what the node registered. A registered broker is alive while
// it heartbeats; a node without a broker record (a controller-only peer)
// is alive while the __meta leader is in contact with it.
func nodeProto(id int32, p Peer, isPeer bool, b *metadata.Broker, meta MetaStatus) *adminv1.Node {
	n := &adminv1.Node{NodeId: id, IsMetaLeader: id == meta.LeaderID}
	if isPeer {
		n.Roles = rolesProto(p.Roles)
		n.KafkaAddr, n.RaftAddr, n.Rack = p.KafkaAddr, p.RaftAddr, p.Rack
	}
	if b != nil {
		if !isPeer {
			roles := make([]config.Role, len(b.Roles))
			for i, r := range b.Roles {
				roles[i] = config.Role(r)
			}
			n.Roles = rolesProto(roles)
		}
		if b.Host != "" {
			n.KafkaAddr = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
		}
		n.RaftAddr = cmp.Or(b.RaftAddr, n.RaftAddr)
		n.Rack = cmp.Or(b.Rack, n.Rack)
		n.Alive = b.Alive
	} else {
		n.Alive = slices.Contains(meta.VotersAlive, id)
	}
	return n
}

func rolesProto(roles []config.Role) []adminv1.NodeRole {
	if len(roles) == 0 {
		return []adminv1.NodeRole{adminv1.NodeRole_NODE_ROLE_CONTROLLER, adminv1.NodeRole_NODE_ROLE_BROKER}
	}
	var out []adminv1.NodeRole
	for _, r := range roles {
		switch r {
		case config.RoleController:
			out = append(out, adminv1.NodeRole_NODE_ROLE_CONTROLLER)
		case config.RoleBroker:
			out = append(out, adminv1.NodeRole_NODE_ROLE_BROKER)
		}
	}
	return out
}

// nodeState is a node's administrative state: draining until it leads
// nothing, then drained.
func nodeState(b *metadata.Broker, leads int) adminv1.NodeState {
	switch {
	case b == nil:
		return adminv1.NodeState_NODE_STATE_ACTIVE
	case b.Decommissioning:
		return adminv1.NodeState_NODE_STATE_DECOMMISSIONING
	case b.Draining && leads > 0:
		return adminv1.NodeState_NODE_STATE_DRAINING
	case b.Draining:
		return adminv1.NodeState_NODE_STATE_DRAINED
	default:
		return adminv1.NodeState_NODE_STATE_ACTIVE
	}
}

// nodeKnown reports whether id is a configured peer or a registered broker.
func (s *Service) nodeKnown(st *metadata.State, id int32) bool {
	if st.Brokers[id] != nil {
		return true
	}
	return slices.ContainsFunc(s.b.Peers(), func(p Peer) bool { return p.ID == id })
}

// nodeInfo returns node id as GetClusterStatus would list it.
func (s *Service) nodeInfo(id int32) *adminv1.Node {
	for _, n := range s.nodes(s.b.State(), s.b.Meta()) {
		if n.GetNodeId() == id {
			return n
		}
	}
	return &adminv1.Node{NodeId: id}
}
