package replica

// Operator calls on partition groups that may run on another node: the
// admin API of any node moves a partition's leadership or watches a group's
// membership and a new member's catch-up, wherever the group's leader and
// members are. Two internal RPCs on the raft port carry them:
// replica.transfer, answered by the node that leads the group, and
// replica.state, answered by any node with its own view of a group.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// Internal RPC methods of the admin calls.
const (
	methodTransfer = "replica.transfer"
	methodState    = "replica.state"
)

// transferHops bounds how often TransferLeader follows a "not the leader"
// answer to the leader that node names.
const transferHops = 3

// GroupState is one node's view of a partition's Raft group.
type GroupState struct {
	// Hosted is false when the node runs no replica of the partition; the
	// other fields are then zero.
	Hosted       bool
	Leader       int32 // the leader this node knows, 0 when none
	IsLeader     bool
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	// Members are the voters of the latest configuration this node's Raft
	// has (committed or not), sorted.
	Members []int32
}

// LocalState returns this node's view of topic/index's group.
func (rr *RaftReplicas) LocalState(topic string, index int32) GroupState {
	g := rr.group(topic, index)
	if g == nil {
		return GroupState{}
	}
	s := GroupState{
		Hosted: true, IsLeader: g.raft.State() == raft.Leader, Term: g.raft.CurrentTerm(),
		CommitIndex: g.raft.CommitIndex(), AppliedIndex: g.raft.AppliedIndex(),
	}
	_, lid := g.raft.LeaderWithID()
	s.Leader, _ = nodeID(lid)
	if f := g.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			if id, ok := nodeID(srv.ID); ok && srv.Suffrage == raft.Voter {
				s.Members = append(s.Members, id)
			}
		}
		slices.Sort(s.Members)
	}
	return s
}

// GroupStateOf asks node for its view of topic/index's group (this node
// answers directly).
func (rr *RaftReplicas) GroupStateOf(ctx context.Context, node int32, topic string, index int32) (GroupState, error) {
	if node == rr.cfg.NodeID {
		return rr.LocalState(topic, index), nil
	}
	addr, ok := rr.addr(node)
	if !ok {
		return GroupState{}, fmt.Errorf("state of %s/%d on node %d: no raft address: %w", topic, index, node, ErrNoTarget)
	}
	b, err := rr.cfg.Mux.Call(ctx, addr, methodState, groupRef{Topic: topic, Partition: index}.encode())
	if err != nil {
		return GroupState{}, fmt.Errorf("state of %s/%d on node %d: %w", topic, index, node, err)
	}
	s, err := decodeGroupState(b)
	if err != nil {
		return GroupState{}, fmt.Errorf("state of %s/%d on node %d: %w", topic, index, node, err)
	}
	return s, nil
}

// serveState answers replica.state.
func (rr *RaftReplicas) serveState(_ context.Context, _ string, req []byte) ([]byte, error) {
	q, err := decodeGroupRef(req)
	if err != nil {
		return nil, err
	}
	return rr.LocalState(q.Topic, q.Partition).encode(), nil
}

// TransferLeader hands the leadership of topic/index to node to (or, when
// to <= 0, to the most caught-up in-sync replica) on whichever node leads
// the group now, and returns the new leader once it is known here or, when
// this node hosts no replica, once the old leader has stepped down. While
// the group has no leader (an election), it waits for one until ctx ends.
func (rr *RaftReplicas) TransferLeader(ctx context.Context, topic string, index, to int32) (int32, error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	leader := rr.leaderHint(topic, index)
	var last error
	for hops := 0; hops < transferHops; {
		if leader > 0 {
			ans, err := rr.transferOn(ctx, leader, topic, index, to)
			switch {
			case err != nil:
				return 0, err
			case ans.Err != "":
				return 0, fmt.Errorf("transfer %s/%d on node %d: %s", topic, index, leader, ans.Err)
			case !ans.NotLeader:
				return ans.Leader, nil
			}
			last = fmt.Errorf("node %d does not lead %s/%d (it names node %d)", leader, topic, index, ans.Leader)
			if ans.Leader > 0 && ans.Leader != leader {
				hops++ // follow the redirect at once, a few times
				leader = ans.Leader
				continue
			}
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = errors.New("no leader known")
			}
			return 0, fmt.Errorf("transfer %s/%d: %w: %w", topic, index, ctx.Err(), last)
		case <-tick.C:
		}
		leader = rr.leaderHint(topic, index)
	}
	return 0, fmt.Errorf("transfer %s/%d: %w: %w", topic, index, ErrNotLeader, last)
}

// leaderHint is the leader of topic/index as this node knows it: its own
// replica's Raft view, else the metadata.
func (rr *RaftReplicas) leaderHint(topic string, index int32) int32 {
	if s := rr.LocalState(topic, index); s.Hosted && s.Leader > 0 {
		return s.Leader
	}
	if p := rr.cfg.Meta.State().Partition(topic, index); p != nil {
		return p.Leader
	}
	return 0
}

// transferOn asks node (maybe this one) to move the leadership it holds.
func (rr *RaftReplicas) transferOn(ctx context.Context, node int32, topic string, index, to int32) (transferAnswer, error) {
	q := transferQuery{groupRef: groupRef{Topic: topic, Partition: index}, To: to}
	if node == rr.cfg.NodeID {
		return rr.transferHere(ctx, q), nil
	}
	addr, ok := rr.addr(node)
	if !ok {
		return transferAnswer{}, fmt.Errorf("transfer %s/%d via node %d: no raft address: %w", topic, index, node, ErrNoTarget)
	}
	b, err := rr.cfg.Mux.Call(ctx, addr, methodTransfer, q.encode())
	if err != nil {
		return transferAnswer{}, fmt.Errorf("transfer %s/%d via node %d: %w", topic, index, node, err)
	}
	ans, err := decodeTransferAnswer(b)
	if err != nil {
		return transferAnswer{}, fmt.Errorf("transfer %s/%d via node %d: %w", topic, index, node, err)
	}
	return ans, nil
}

// serveTransfer answers replica.transfer.
func (rr *RaftReplicas) serveTransfer(ctx context.Context, _ string, req []byte) ([]byte, error) {
	q, err := decodeTransferQuery(req)
	if err != nil {
		return nil, err
	}
	return rr.transferHere(ctx, q).encode(), nil
}

// transferHere moves the leadership of a group this node leads, or says
// who leads it.
func (rr *RaftReplicas) transferHere(ctx context.Context, q transferQuery) transferAnswer {
	g := rr.group(q.Topic, q.Partition)
	if g == nil {
		return transferAnswer{NotLeader: true, Leader: rr.metaLeader(q.Topic, q.Partition)}
	}
	if g.raft.State() != raft.Leader {
		_, lid := g.raft.LeaderWithID()
		id, _ := nodeID(lid)
		return transferAnswer{NotLeader: true, Leader: id}
	}
	if q.To == rr.cfg.NodeID {
		return transferAnswer{Leader: q.To}
	}
	if q.To > 0 {
		if s := rr.LocalState(q.Topic, q.Partition); !slices.Contains(s.Members, q.To) {
			return transferAnswer{Err: fmt.Sprintf("node %d is not a member of the group (members %v)", q.To, s.Members)}
		}
	}
	if err := rr.Transfer(ctx, q.Topic, q.Partition, q.To); errors.Is(err, ErrNotLeader) {
		_, lid := g.raft.LeaderWithID() // another transfer moved it first
		id, _ := nodeID(lid)
		return transferAnswer{NotLeader: true, Leader: id}
	} else if err != nil {
		return transferAnswer{Err: err.Error()}
	}
	return transferAnswer{Leader: rr.awaitNewLeader(ctx, g, q.To)}
}

// awaitNewLeader returns the leader g knows after it stepped down: to,
// when that was named, else the first other leader g hears of (0 if ctx
// ends first).
func (rr *RaftReplicas) awaitNewLeader(ctx context.Context, g *group, to int32) int32 {
	if to > 0 {
		return to
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		_, lid := g.raft.LeaderWithID()
		if id, ok := nodeID(lid); ok && id != rr.cfg.NodeID {
			return id
		}
		select {
		case <-ctx.Done():
			return 0
		case <-tick.C:
		}
	}
}

func (rr *RaftReplicas) metaLeader(topic string, index int32) int32 {
	if p := rr.cfg.Meta.State().Partition(topic, index); p != nil && p.Leader != rr.cfg.NodeID {
		return p.Leader
	}
	return 0
}

// groupRef names a partition group in an admin RPC.
type groupRef struct {
	Topic     string
	Partition int32
}

func (q groupRef) encode() []byte {
	var w wbuf
	w.str(q.Topic)
	w.varint(int64(q.Partition))
	return w.b
}

func (q *groupRef) decode(r *rbuf) {
	q.Topic, q.Partition = r.str("topic"), r.int32("partition")
	if r.err == nil && (q.Topic == "" || q.Partition < 0) {
		r.fail("partition reference")
	}
}

func decodeGroupRef(b []byte) (groupRef, error) {
	r := rbuf{b: b}
	var q groupRef
	q.decode(&r)
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	return q, r.err
}

// transferQuery is a replica.transfer request: move the group's
// leadership to node To (0: the best in-sync replica).
type transferQuery struct {
	groupRef
	To int32
}

func (q transferQuery) encode() []byte {
	var w wbuf
	w.b = q.groupRef.encode()
	w.varint(int64(q.To))
	return w.b
}

func decodeTransferQuery(b []byte) (transferQuery, error) {
	r := rbuf{b: b}
	var q transferQuery
	q.groupRef.decode(&r)
	q.To = r.int32("target node")
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	return q, r.err
}

// transferAnswer is a replica.transfer answer: the new leader, or that the
// node does not lead (with the leader it knows), or why the transfer
// failed.
type transferAnswer struct {
	Leader    int32
	NotLeader bool
	Err       string
}

func (a transferAnswer) encode() []byte {
	var w wbuf
	w.varint(int64(a.Leader))
	flag := uint64(0)
	if a.NotLeader {
		flag = 1
	}
	w.uvarint(flag)
	w.str(a.Err)
	return w.b
}

func decodeTransferAnswer(b []byte) (transferAnswer, error) {
	r := rbuf{b: b}
	a := transferAnswer{Leader: r.int32("leader")}
	flag := r.uvarint("flags")
	a.Err = r.str("error")
	if r.err == nil && (flag > 1 || len(r.b) != 0) {
		r.fail("transfer answer")
	}
	a.NotLeader = flag == 1
	return a, r.err
}

func (s GroupState) encode() []byte {
	var w wbuf
	flags := uint64(0)
	if s.Hosted {
		flags |= 1
	}
	if s.IsLeader {
		flags |= 2
	}
	w.uvarint(flags)
	w.varint(int64(s.Leader))
	w.uvarint(s.Term)
	w.uvarint(s.CommitIndex)
	w.uvarint(s.AppliedIndex)
	w.uvarint(uint64(len(s.Members)))
	for _, id := range s.Members {
		w.varint(int64(id))
	}
	return w.b
}

// maxMembers bounds the member list of a decoded GroupState.
const maxMembers = 1024

func decodeGroupState(b []byte) (GroupState, error) {
	r := rbuf{b: b}
	flags := r.uvarint("flags")
	s := GroupState{Hosted: flags&1 != 0, IsLeader: flags&2 != 0, Leader: r.int32("leader"),
		Term: r.uvarint("term"), CommitIndex: r.uvarint("commit index"), AppliedIndex: r.uvarint("applied index")}
	n := r.uvarint("member count")
	if r.err == nil && (flags > 3 || n > maxMembers || n > uint64(len(r.b))) {
		r.fail("group state")
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		s.Members = append(s.Members, r.int32("member"))
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return GroupState{}, r.err
	}
	return s, nil
}
