package adminapi

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/chronik-stream/chronik/controlplane/config"
	"github.com/chronik-stream/chronik/controlplane/metadata"
	adminv1 "github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1"
)

// metaTopic names __meta in a LeadershipChange.
const metaTopic = "__meta"

// transferParallelism bounds the partition transfers a node-wide move runs
// at once.
const transferParallelism = 8

// TransferLeader moves the leadership of __meta, of one partition, or of
// everything a node leads, and returns once the metadata shows the new
// leaders.
func (s *Service) TransferLeader(ctx context.Context, req *connect.Request[adminv1.TransferLeaderRequest]) (*connect.Response[adminv1.TransferLeaderResponse], error) {
	m := req.Msg
	timeout, err := s.timeoutOf(m.GetTimeout().AsDuration(), m.Timeout != nil)
	if err != nil {
		return nil, connectError(err)
	}
	t := transferTarget{to: m.GetToNodeId(), timeout: timeout}
	switch target := m.GetTarget().(type) {
	case *adminv1.TransferLeaderRequest_Meta:
		if !target.Meta {
			return nil, connectError(errorf(ErrInvalidRequest, "meta must be true when set"))
		}
		t.meta = true
	case *adminv1.TransferLeaderRequest_Partition:
		if target.Partition == nil {
			return nil, connectError(errorf(ErrInvalidRequest, "partition needs a topic and a partition number"))
		}
		t.partition = target.Partition
	case *adminv1.TransferLeaderRequest_NodeId:
		t.node, t.isNode = target.NodeId, true
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := s.transfer(ctx, t)
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(&adminv1.TransferLeaderResponse{Changes: res.changes}), nil
}

// timeoutOf validates a requested timeout, using the default when unset.
func (s *Service) timeoutOf(d time.Duration, set bool) (time.Duration, error) {
	if !set {
		return s.cfg.TransferTimeout, nil
	}
	if d <= 0 {
		return 0, errorf(ErrInvalidRequest, "timeout must be positive, got %s", d)
	}
	return d, nil
}

// transferTarget is what a TransferLeader call (or its REST form) moves.
type transferTarget struct {
	meta      bool
	partition *adminv1.PartitionRef
	node      int32
	isNode    bool
	to        int32
	timeout   time.Duration // for messages only; ctx carries the deadline
}

// transferResult lists the leaderships moved, in the order they completed,
// and the partitions a node-wide move had to leave (no other in-sync
// replica).
type transferResult struct {
	changes []*adminv1.LeadershipChange
	skipped []string
}

func (s *Service) transfer(ctx context.Context, t transferTarget) (transferResult, error) {
	var res transferResult
	if t.to < 0 {
		return res, errorf(ErrInvalidRequest, "to_node_id must be a node id or 0, got %d", t.to)
	}
	if t.to > 0 && !s.nodeKnown(s.b.State(), t.to) {
		return res, errorf(ErrUnknownNode, "unknown node %d", t.to)
	}
	var ch *adminv1.LeadershipChange
	var err error
	switch {
	case t.meta:
		ch, err = s.transferMeta(ctx, t.to, 0, t.timeout)
	case t.partition != nil:
		ch, err = s.transferPartition(ctx, t.partition.GetTopic(), t.partition.GetPartition(), t.to, t.timeout)
	case t.isNode:
		return s.transferNode(ctx, t.node, t.to, t.timeout)
	default:
		return res, errorf(ErrInvalidRequest, "name what to move: meta, partition or node_id")
	}
	if ch != nil {
		res.changes = append(res.changes, ch)
	}
	return res, err
}

// voters lists the __meta voters: peers and brokers with the controller
// role.
func (s *Service) voters(st *metadata.State) []int32 {
	var out []int32
	for _, p := range s.b.Peers() {
		if p.HasRole(config.RoleController) {
			out = append(out, p.ID)
		}
	}
	for id, b := range st.Brokers {
		if hasRole(b, config.RoleController) && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// voterAlive reports whether a voter can take the __meta leadership: the
// leader is in contact with it, or (when the leader's view is not
// available here) its broker record is alive.
func voterAlive(st *metadata.State, meta MetaStatus, id int32) bool {
	if len(meta.VotersAlive) > 0 {
		return slices.Contains(meta.VotersAlive, id)
	}
	return brokerAlive(st, id)
}

// transferMeta moves the __meta leadership to node to, or to the best
// other voter when to is 0, never to avoid. It returns nil when to already
// leads.
func (s *Service) transferMeta(ctx context.Context, to, avoid int32, timeout time.Duration) (*adminv1.LeadershipChange, error) {
	st, meta := s.b.State(), s.b.Meta()
	prev := meta.LeaderID
	if prev == 0 {
		return nil, errorf(ErrNoMetaLeader, "__meta has no leader; wait for an election (see `chronikctl cluster status`)")
	}
	voters := s.voters(st)
	switch {
	case to == prev:
		return nil, nil
	case to != 0 && !slices.Contains(voters, to):
		return nil, errorf(ErrNotVoter, "node %d is not a __meta voter (it has no controller role)", to)
	case to != 0 && !voterAlive(st, meta, to):
		return nil, errorf(ErrNotAlive, "node %d is not alive", to)
	case to == 0:
		to = s.metaCandidate(st, meta, voters, avoid)
		if to == 0 {
			return nil, errorf(ErrNoCandidate, "no other live __meta voter can take the leadership from node %d", prev)
		}
	}
	got, err := s.b.TransferMeta(ctx, to)
	if err != nil {
		return nil, s.transferError(ctx, err, metaTopic, to, timeout)
	}
	err = s.waitFor(ctx, func() bool { return s.b.Meta().LeaderID == got })
	if err != nil {
		return nil, s.transferError(ctx, err, metaTopic, got, timeout)
	}
	return &adminv1.LeadershipChange{Topic: metaTopic, PreviousLeaderId: prev, NewLeaderId: got, Term: s.b.Meta().Term}, nil
}

// metaCandidate picks the voter to hand __meta to: a live voter other than
// the leader and avoid, active before draining, then the one leading the
// fewest partitions, then the lowest id; 0 when there is none.
func (s *Service) metaCandidate(st *metadata.State, meta MetaStatus, voters []int32, avoid int32) int32 {
	leaders, _ := leaderCounts(st)
	var best int32
	var bestKey [3]int
	for _, v := range voters {
		if v == meta.LeaderID || v == avoid || !voterAlive(st, meta, v) {
			continue
		}
		key := [3]int{maintenance(st.Brokers[v]), leaders[v], int(v)}
		if best == 0 || slices.Compare(key[:], bestKey[:]) < 0 {
			best, bestKey = v, key
		}
	}
	return best
}

// maintenance ranks a broker for taking leadership: 0 active, 1 draining,
// 2 decommissioning.
func maintenance(b *metadata.Broker) int {
	switch {
	case b == nil:
		return 0
	case b.Decommissioning:
		return 2
	case b.Draining:
		return 1
	default:
		return 0
	}
}

// partitionOf finds topic/partition in st.
func partitionOf(st *metadata.State, topic string, partition int32) (*metadata.Partition, error) {
	if st.Topics[topic] == nil {
		return nil, errorf(ErrUnknownTopic, "unknown topic %s", topic)
	}
	p := st.Partition(topic, partition)
	if p == nil {
		return nil, errorf(ErrUnknownPartition, "unknown partition %s/%d", topic, partition)
	}
	return p, nil
}

// checkLeaderTarget says why node to cannot lead partition p, or nil.
func checkLeaderTarget(st *metadata.State, name string, p *metadata.Partition, to int32) error {
	switch {
	case !slices.Contains(p.Replicas, to):
		return errorf(ErrNotReplica, "node %d is not a replica of %s", to, name)
	case !brokerAlive(st, to):
		return errorf(ErrNotAlive, "node %d is not alive", to)
	case !slices.Contains(p.ISR, to):
		return errorf(ErrNotInSync, "node %d is not in sync for %s (ISR %v)", to, name, p.ISR)
	}
	return nil
}

// bestCandidate picks the in-sync replica of p to hand its leadership to,
// other than its leader and avoid, as bestAmong ranks them.
func bestCandidate(st *metadata.State, p *metadata.Partition, leaders map[int32]int, avoid int32) int32 {
	var cands []int32
	for _, r := range p.ISR {
		if r != p.Leader && slices.Contains(p.Replicas, r) {
			cands = append(cands, r)
		}
	}
	return bestAmong(st, cands, leaders, avoid)
}

// transferPartition moves the leadership of topic/partition to node to, or
// to the best candidate when to is 0. It returns nil when to already
// leads.
func (s *Service) transferPartition(ctx context.Context, topic string, partition, to int32, timeout time.Duration) (*adminv1.LeadershipChange, error) {
	st := s.b.State()
	p, err := partitionOf(st, topic, partition)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("%s/%d", topic, partition)
	if to != 0 {
		if to == p.Leader && leaderLive(st, p) {
			return nil, nil
		}
		if err := checkLeaderTarget(st, name, p, to); err != nil {
			return nil, err
		}
	} else {
		leaders, _ := leaderCounts(st)
		if to = bestCandidate(st, p, leaders, 0); to == 0 {
			return nil, errorf(ErrNoCandidate, "no other live in-sync replica of %s can take the leadership (replicas %v, ISR %v)",
				name, p.Replicas, p.ISR)
		}
	}
	if !leaderLive(st, p) {
		return nil, errorf(ErrPartitionOffline, "%s has no live leader to hand the leadership over", name)
	}
	return s.moveLeader(ctx, topic, partition, p.Leader, to, timeout)
}

// moveLeader asks the Backend to move a partition's leadership from prev
// to node to and waits until the metadata shows the new leader.
func (s *Service) moveLeader(ctx context.Context, topic string, partition, prev, to int32, timeout time.Duration) (*adminv1.LeadershipChange, error) {
	name := fmt.Sprintf("%s/%d", topic, partition)
	got, err := s.b.TransferPartition(ctx, topic, partition, to)
	if err != nil {
		return nil, s.transferError(ctx, err, name, to, timeout)
	}
	var epoch int32
	err = s.waitFor(ctx, func() bool {
		p := s.b.State().Partition(topic, partition)
		if p != nil && p.Leader == got {
			epoch = p.LeaderEpoch
			return true
		}
		return false
	})
	if err != nil {
		return nil, s.transferError(ctx, err, name, got, timeout)
	}
	if got == prev {
		return nil, nil
	}
	s.log.Info("leadership moved", "topic", topic, "partition", partition, "from", prev, "to", got, "epoch", epoch)
	return &adminv1.LeadershipChange{Topic: topic, Partition: partition, PreviousLeaderId: prev, NewLeaderId: got, Term: uint64(epoch)}, nil
}

// transferError describes a failed transfer of group name to node to.
func (s *Service) transferError(ctx context.Context, err error, name string, to int32, timeout time.Duration) error {
	if ctx.Err() != nil && errIsCtx(err) {
		return wrapOp(ErrLeaderNotElected, err, "%s: leadership did not move to node %d within %s", name, to, timeout)
	}
	return wrapOp(ErrNoCandidate, err, "move the leadership of %s to node %d", name, to)
}

// transferNode moves every leadership node holds: __meta first, then its
// partitions, several at a time. Partitions without another live in-sync
// replica stay and are listed in skipped.
func (s *Service) transferNode(ctx context.Context, node, to int32, timeout time.Duration) (transferResult, error) {
	var res transferResult
	st := s.b.State()
	if !s.nodeKnown(st, node) {
		return res, errorf(ErrUnknownNode, "unknown node %d", node)
	}
	if to == node {
		return res, errorf(ErrInvalidRequest, "cannot move the leaderships of node %d to itself", node)
	}
	moves, skipped, err := planNodeMoves(st, node, to)
	if err != nil {
		return res, err
	}
	res.skipped = skipped
	if s.b.Meta().LeaderID == node {
		ch, err := s.transferMeta(ctx, to, node, timeout)
		if err != nil {
			return res, err
		}
		if ch != nil {
			res.changes = append(res.changes, ch)
		}
	}
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, transferParallelism)
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, m := range moves {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ch, err := s.moveLeader(ctx, m.topic, m.partition, node, m.to, timeout)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && firstErr == nil:
				firstErr = err
				cancel()
			case err == nil && ch != nil:
				res.changes = append(res.changes, ch)
			}
		}()
	}
	wg.Wait()
	if len(skipped) > 0 {
		s.log.Warn("leaderships left in place: no other live in-sync replica", "node", node, "partitions", skipped)
	}
	return res, firstErr
}

// leaderMove is one planned partition leadership move.
type leaderMove struct {
	topic     string
	partition int32
	to        int32
}

// planNodeMoves chooses where each partition node leads goes: to node to
// when set (which must be able to take every one of them), else the best
// candidate, counting the moves already planned so they spread.
func planNodeMoves(st *metadata.State, node, to int32) (moves []leaderMove, skipped []string, err error) {
	leaders, _ := leaderCounts(st)
	for _, t := range st.SortedTopics() {
		for i := range t.Partitions {
			p := &t.Partitions[i]
			if p.Leader != node {
				continue
			}
			name := fmt.Sprintf("%s/%d", t.Name, p.ID)
			target := to
			if target != 0 {
				if err := checkLeaderTarget(st, name, p, target); err != nil {
					return nil, nil, err
				}
			} else if target = bestCandidate(st, p, leaders, node); target == 0 {
				skipped = append(skipped, name)
				continue
			}
			leaders[target]++
			leaders[node]--
			moves = append(moves, leaderMove{topic: t.Name, partition: p.ID, to: target})
		}
	}
	return moves, skipped, nil
}

// changer is the optional change signal of a Backend (metadata.Service
// has it).
type changer interface {
	Changed() <-chan struct{}
}

// waitFor returns once cond holds, re-checking it on every metadata change
// and every PollInterval (__meta status changes are not signalled), or the
// context's error when it ends first.
func (s *Service) waitFor(ctx context.Context, cond func() bool) error {
	c, _ := s.b.(changer)
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		var changed <-chan struct{}
		if c != nil {
			changed = c.Changed()
		}
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-t.C:
		}
	}
}
