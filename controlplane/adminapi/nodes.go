package adminapi

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"

	"connectrpc.com/connect"

	"github.com/chronik-stream/chronik/controlplane/config"
	"github.com/chronik-stream/chronik/controlplane/metadata"
	adminv1 "github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1"
	"github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1/adminv1connect"
)

// maxNodeID is the largest peer id cluster.toml allows.
const maxNodeID = 255

// DrainNode marks a node draining, so that it is given no leaderships, and
// moves every leadership it holds to other nodes.
func (s *Service) DrainNode(ctx context.Context, req *connect.Request[adminv1.DrainNodeRequest]) (*connect.Response[adminv1.DrainNodeResponse], error) {
	return onController(ctx, s, req, adminv1connect.AdminServiceClient.DrainNode, s.drainNode)
}

func (s *Service) drainNode(ctx context.Context, m *adminv1.DrainNodeRequest) (*adminv1.DrainNodeResponse, error) {
	timeout, err := s.timeoutOf(m.GetTimeout().AsDuration(), m.Timeout != nil)
	if err != nil {
		return nil, err
	}
	id := m.GetNodeId()
	st := s.b.State()
	if !s.nodeKnown(st, id) {
		return nil, errorf(ErrUnknownNode, "unknown node %d", id)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if b := st.Brokers[id]; b != nil && !b.Draining {
		cmd := &metadata.BrokerStateCmd{ID: id, Alive: b.Alive, Draining: true, Decommissioning: b.Decommissioning}
		if _, err := s.b.Propose(ctx, &metadata.Command{BrokerState: cmd}); err != nil {
			return nil, fmt.Errorf("mark node %d draining: %w", id, err)
		}
		s.log.Info("node draining", "node", id)
	}
	res, err := s.transferNode(ctx, id, 0, timeout)
	if err != nil {
		return nil, err
	}
	return &adminv1.DrainNodeResponse{Node: s.nodeInfo(id), Changes: res.changes}, nil
}

// Resume clears node id's drain flag, so that it is given leaderships
// again (the next rebalance hands its preferred leaderships back). A node
// is drained to be restarted, so the broker calls Resume once it has
// started again and registered; a node that is not draining is left as it
// is.
func Resume(ctx context.Context, b Backend, id int32) error {
	br := b.State().Brokers[id]
	if br == nil {
		return errorf(ErrUnknownNode, "unknown node %d", id)
	}
	if !br.Draining {
		return nil
	}
	cmd := &metadata.BrokerStateCmd{ID: id, Alive: br.Alive, Draining: false, Decommissioning: br.Decommissioning}
	if _, err := b.Propose(ctx, &metadata.Command{BrokerState: cmd}); err != nil {
		return fmt.Errorf("clear the drain flag of node %d: %w", id, err)
	}
	return nil
}

// DecommissionNode marks a node decommissioning and starts the rebalance
// that moves its replicas away; the rebalance's last step removes the node
// from __meta. When the node leads __meta, the leadership moves first and
// the call continues on the new controller.
func (s *Service) DecommissionNode(ctx context.Context, req *connect.Request[adminv1.DecommissionNodeRequest]) (*connect.Response[adminv1.DecommissionNodeResponse], error) {
	addr, err := s.route(req.Header())
	if err != nil {
		return nil, connectError(err)
	}
	if addr != "" {
		return forward(ctx, s, addr, req, adminv1connect.AdminServiceClient.DecommissionNode)
	}
	m := req.Msg
	if err := s.checkDecommission(s.b.State(), m.GetNodeId()); err != nil {
		return nil, connectError(err)
	}
	if m.GetNodeId() == s.b.NodeID() && !m.GetDryRun() {
		return s.handOverDecommission(ctx, req)
	}
	resp, err := s.decommission(ctx, m)
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(resp), nil
}

// handOverDecommission moves the __meta leadership off this node, which is
// to be decommissioned, and passes the call to the new controller.
func (s *Service) handOverDecommission(ctx context.Context, req *connect.Request[adminv1.DecommissionNodeRequest]) (*connect.Response[adminv1.DecommissionNodeResponse], error) {
	tctx, cancel := context.WithTimeout(ctx, s.cfg.TransferTimeout)
	defer cancel()
	if _, err := s.transferMeta(tctx, 0, s.b.NodeID(), s.cfg.TransferTimeout); err != nil {
		return nil, connectError(fmt.Errorf("move the __meta leadership off node %d before decommissioning it: %w", s.b.NodeID(), err))
	}
	var addr string
	err := s.waitFor(tctx, func() bool {
		var ok bool
		addr, ok = s.b.ControllerAddr()
		return ok && s.b.Meta().LeaderID != s.b.NodeID()
	})
	if err != nil {
		return nil, connectError(errorf(ErrNoController, "no new controller took over from node %d within %s", s.b.NodeID(), s.cfg.TransferTimeout))
	}
	return forward(ctx, s, addr, req, adminv1connect.AdminServiceClient.DecommissionNode)
}

// checkDecommission says why node id cannot be decommissioned, or nil.
func (s *Service) checkDecommission(st *metadata.State, id int32) error {
	if !s.nodeKnown(st, id) {
		return errorf(ErrUnknownNode, "unknown node %d", id)
	}
	voters := s.voters(st)
	if slices.Contains(voters, id) && len(voters) == 1 {
		return errorf(ErrLastController, "node %d is the last __meta voter; a cluster cannot run without a controller", id)
	}
	var others []int32
	for _, b := range st.LiveBrokers() {
		if b.ID != id && !b.Decommissioning && hasRole(b, config.RoleBroker) {
			others = append(others, b.ID)
		}
	}
	for _, t := range st.SortedTopics() {
		for _, p := range t.Partitions {
			if !slices.Contains(p.Replicas, id) {
				continue
			}
			if len(p.Replicas) > len(others) {
				return errorf(ErrNotEnoughBrokers, "cannot decommission node %d: %s/%d has %d replicas but only %d other live brokers (%v) could hold them; add a node or lower the topic's replication factor first",
					id, t.Name, p.ID, len(p.Replicas), len(others), others)
			}
			if !slices.ContainsFunc(p.Replicas, func(r int32) bool { return r != id && brokerAlive(st, r) }) && !brokerAlive(st, id) {
				return errorf(ErrNotEnoughBrokers, "cannot decommission node %d: %s/%d has no live replica (replicas %v) to copy its data from; bring node %d back first",
					id, t.Name, p.ID, p.Replicas, id)
			}
		}
	}
	return nil
}

func (s *Service) decommission(ctx context.Context, m *adminv1.DecommissionNodeRequest) (*adminv1.DecommissionNodeResponse, error) {
	id := m.GetNodeId()
	st := s.b.State()
	moves := s.plan(st, id)
	resp := &adminv1.DecommissionNodeResponse{Moves: movesProto(moves)}
	if m.GetDryRun() {
		return resp, nil
	}
	if err := s.reb.idle(); err != nil {
		return nil, err
	}
	if b := st.Brokers[id]; b != nil && !b.Decommissioning {
		cmd := &metadata.BrokerStateCmd{ID: id, Alive: b.Alive, Draining: b.Draining, Decommissioning: true}
		if _, err := s.b.Propose(ctx, &metadata.Command{BrokerState: cmd}); err != nil {
			return nil, fmt.Errorf("mark node %d decommissioning: %w", id, err)
		}
	}
	rid, err := s.reb.start(&job{
		label:  fmt.Sprintf("decommission of node %d", id),
		moves:  moves,
		finish: func(ctx context.Context) error { return s.removeNode(ctx, id) },
	})
	if err != nil {
		return nil, err
	}
	resp.RebalanceId = rid
	return resp, nil
}

// removeNode removes a decommissioned node from __meta (its broker record
// and its vote) once it hosts no replica.
func (s *Service) removeNode(ctx context.Context, id int32) error {
	st := s.b.State()
	for _, t := range st.SortedTopics() {
		for _, p := range t.Partitions {
			if slices.Contains(p.Replicas, id) {
				return errorf(ErrStalePlan, "node %d still hosts a replica of %s/%d; run the decommission again", id, t.Name, p.ID)
			}
		}
	}
	if err := s.b.RemoveNode(ctx, id); err != nil {
		return fmt.Errorf("remove node %d from __meta: %w", id, err)
	}
	s.log.Info("node removed from __meta", "node", id)
	return nil
}

// AddNode registers a new peer on the active controller.
func (s *Service) AddNode(ctx context.Context, req *connect.Request[adminv1.AddNodeRequest]) (*connect.Response[adminv1.AddNodeResponse], error) {
	return onController(ctx, s, req, adminv1connect.AdminServiceClient.AddNode, s.addNode)
}

func (s *Service) addNode(ctx context.Context, m *adminv1.AddNodeRequest) (*adminv1.AddNodeResponse, error) {
	p, err := peerOf(m)
	if err != nil {
		return nil, err
	}
	if s.nodeKnown(s.b.State(), p.ID) {
		return nil, errorf(ErrNodeExists, "node %d already exists", p.ID)
	}
	if err := s.b.AddNode(ctx, p); err != nil {
		return nil, fmt.Errorf("add node %d: %w", p.ID, err)
	}
	s.log.Info("node added", "node", p.ID, "kafka_addr", p.KafkaAddr, "raft_addr", p.RaftAddr, "roles", p.Roles)
	n := s.nodeInfo(p.ID)
	if n.GetKafkaAddr() == "" { // the Backend lists it once it registers
		st, meta := s.b.State(), s.b.Meta()
		n = nodeProto(p.ID, p, true, st.Brokers[p.ID], meta)
		n.State = adminv1.NodeState_NODE_STATE_ACTIVE
	}
	return &adminv1.AddNodeResponse{Node: n}, nil
}

// peerOf validates an AddNode request.
func peerOf(m *adminv1.AddNodeRequest) (Peer, error) {
	id := m.GetNodeId()
	if id < 1 || id > maxNodeID {
		return Peer{}, errorf(ErrInvalidRequest, "node_id %d is outside 1-%d", id, maxNodeID)
	}
	host, port, err := net.SplitHostPort(m.GetKafkaAddr())
	if err != nil || host == "" {
		return Peer{}, errorf(ErrInvalidRequest, "kafka_addr %q is not host:port", m.GetKafkaAddr())
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return Peer{}, errorf(ErrInvalidRequest, "kafka_addr %q has no valid port", m.GetKafkaAddr())
	}
	if rp := m.GetRaftPort(); rp < 1 || rp > 65535 {
		return Peer{}, errorf(ErrInvalidRequest, "raft_port %d is not a port", rp)
	}
	p := Peer{ID: id, KafkaAddr: m.GetKafkaAddr(), RaftAddr: net.JoinHostPort(host, strconv.Itoa(int(m.GetRaftPort()))), Rack: m.GetRack()}
	for _, r := range m.GetRoles() {
		switch r {
		case adminv1.NodeRole_NODE_ROLE_CONTROLLER:
			p.Roles = append(p.Roles, config.RoleController)
		case adminv1.NodeRole_NODE_ROLE_BROKER:
			p.Roles = append(p.Roles, config.RoleBroker)
		default:
			return Peer{}, errorf(ErrInvalidRequest, "unknown role %v", r)
		}
	}
	if len(p.Roles) == 0 {
		p.Roles = []config.Role{config.RoleController, config.RoleBroker}
	}
	return p, nil
}
