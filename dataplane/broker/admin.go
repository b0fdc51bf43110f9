package broker

// The operator API (controlplane/adminapi) runs on every node, served on
// the Kafka port's HTTP side. adminBackend is what it runs over: the
// controller, the partition groups and cluster.toml in cluster mode, the
// local metadata in single-node mode, where there is nothing to move.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/chronik-stream/chronik/controlplane/adminapi"
	"github.com/chronik-stream/chronik/controlplane/config"
	"github.com/chronik-stream/chronik/controlplane/metadata"
	"github.com/chronik-stream/chronik/dataplane/internal/replica"
)

// ErrSingleNode is returned by admin operations that need other nodes when
// the broker runs without a cluster configuration.
var ErrSingleNode = errors.New("broker: single-node mode (no CHRONIK_CLUSTER_CONFIG)")

// adminPoll is how often the replica waits re-read the groups' state.
const adminPoll = 50 * time.Millisecond

// adminBackend implements adminapi.Backend for this node.
type adminBackend struct {
	b *Broker

	mu    sync.Mutex
	added map[int32]adminapi.Peer // peers added at run time, not in cluster.toml
}

var _ adminapi.Backend = (*adminBackend)(nil)

// newAdminService builds the node's admin API service.
func (b *Broker) newAdminService() *adminapi.Service {
	minISR := 1
	if b.cfg.Cluster != nil {
		minISR = b.cfg.Cluster.MinInsyncReplicas
	}
	return adminapi.New(adminapi.Config{
		Backend:           b.adminBackend(),
		Logger:            b.cfg.Logger,
		MinInsyncReplicas: minISR,
		TransferTimeout:   b.cfg.TransferTimeout,
	})
}

func (b *Broker) adminBackend() *adminBackend {
	return &adminBackend{b: b, added: map[int32]adminapi.Peer{}}
}

// runAdmin clears this node's drain mark (a drained node has restarted)
// and runs the admin service's rebalance executor until ctx ends.
func (b *Broker) runAdmin(ctx context.Context) error {
	if b.cfg.Cluster != nil {
		rctx, cancel := context.WithTimeout(ctx, b.cfg.TransferTimeout)
		err := adminapi.Resume(rctx, b.adminBackend(), b.cfg.NodeID)
		cancel()
		if err != nil && ctx.Err() == nil {
			b.log.Warn("clear the drain mark after restart", "err", err)
		}
	}
	return b.admin.Run(ctx)
}

// NodeID is this node's id.
func (a *adminBackend) NodeID() int32 { return a.b.cfg.NodeID }

// State is the node's metadata image.
func (a *adminBackend) State() *metadata.State { return a.b.meta.State() }

// Changed signals the next metadata change.
func (a *adminBackend) Changed() <-chan struct{} { return a.b.meta.Changed() }

func (a *adminBackend) cluster() *config.Cluster { return a.b.cfg.Cluster }

// single reports whether the node runs without a cluster.
func (a *adminBackend) single() bool { return a.b.ctrl == nil }

func (a *adminBackend) singleErr(what string) error { return fmt.Errorf("%s: %w", what, ErrSingleNode) }

func (a *adminBackend) selfAddr() string {
	return net.JoinHostPort(a.b.cfg.AdvertisedHost, strconv.Itoa(a.b.cfg.AdvertisedPort))
}

func (a *adminBackend) Propose(ctx context.Context, cmd *metadata.Command) (metadata.Result, error) {
	return a.b.meta.Propose(ctx, cmd)
}

// Meta describes __meta: in a cluster from the controller, with the voters
// this node hears from; on a single node, the node alone.
func (a *adminBackend) Meta() adminapi.MetaStatus {
	if a.single() {
		idx := a.State().Index
		return adminapi.MetaStatus{LeaderID: a.NodeID(), CommitIndex: idx, AppliedIndex: idx,
			QuorumSize: 1, ClusterSize: 1, VotersAlive: []int32{a.NodeID()}}
	}
	c := a.b.ctrl
	term, commit, applied := c.Stats()
	voters, _ := c.Voters() // none while the configuration cannot be read
	answering := c.Answering()
	st := a.State()
	var alive []int32
	for _, v := range voters {
		_, inFile := a.cluster().Peer(v)
		b := st.Brokers[v]
		// Voters added at run time are not health-checked: their broker
		// heartbeats stand in.
		if slices.Contains(answering, v) || (!inFile && b != nil && b.Alive) {
			alive = append(alive, v)
		}
	}
	return adminapi.MetaStatus{
		LeaderID: c.LeaderID(), Term: term, CommitIndex: commit, AppliedIndex: applied,
		QuorumSize: int32(len(voters)/2 + 1), ClusterSize: int32(len(voters)), VotersAlive: alive,
	}
}

// Peers lists the members among cluster.toml's peers (a __meta voter or a
// registered broker: a peer not started yet, or decommissioned, is not
// listed) and the peers added at run time.
func (a *adminBackend) Peers() []adminapi.Peer {
	if a.single() {
		return []adminapi.Peer{{ID: a.NodeID(), KafkaAddr: a.selfAddr(),
			Roles: []config.Role{config.RoleController, config.RoleBroker}}}
	}
	voters, _ := a.b.ctrl.Voters()
	st := a.State()
	var out []adminapi.Peer
	for _, p := range a.cluster().Peers {
		if st.Brokers[p.ID] == nil && !slices.Contains(voters, p.ID) {
			continue
		}
		out = append(out, adminapi.Peer{ID: p.ID, Roles: slices.Clone(p.Roles), KafkaAddr: p.Addr, RaftAddr: p.RaftAddr(), Rack: p.Rack})
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.added {
		if !slices.ContainsFunc(out, func(q adminapi.Peer) bool { return q.ID == p.ID }) {
			out = append(out, p)
		}
	}
	return out
}

// ControllerAddr is the Kafka address of the __meta leader.
func (a *adminBackend) ControllerAddr() (string, bool) {
	if a.single() {
		return a.selfAddr(), true
	}
	id := a.b.ctrl.LeaderID()
	if id == 0 {
		return "", false
	}
	if p, ok := a.cluster().Peer(id); ok {
		return p.Addr, true
	}
	if b := a.State().Brokers[id]; b != nil && b.Host != "" {
		return net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))), true
	}
	return "", false
}

func (a *adminBackend) TransferMeta(ctx context.Context, to int32) (int32, error) {
	if a.single() {
		return 0, a.singleErr("transfer the __meta leadership")
	}
	if err := a.b.ctrl.TransferLeadership(ctx, to); err != nil {
		return 0, err
	}
	if to != 0 {
		return to, nil
	}
	return a.b.ctrl.LeaderID(), nil
}

func (a *adminBackend) TransferPartition(ctx context.Context, topic string, partition, to int32) (int32, error) {
	if a.single() {
		return 0, a.singleErr(fmt.Sprintf("transfer the leadership of %s/%d", topic, partition))
	}
	return a.b.rr.TransferLeader(ctx, topic, partition, to)
}

// AddReplica lists node as an extra replica, so that the group's leader
// adds it (reconcileMembers), and waits until the leader has it as a
// member, it has applied what the group had committed then, and the
// leader counts it in sync.
func (a *adminBackend) AddReplica(ctx context.Context, topic string, partition, node int32) error {
	if a.single() {
		return a.singleErr(fmt.Sprintf("add node %d to %s/%d", node, topic, partition))
	}
	err := a.changeReplicas(ctx, topic, partition, func(p *metadata.Partition) ([]int32, []int32, error) {
		if slices.Contains(p.Replicas, node) {
			return nil, nil, nil
		}
		return append(slices.Clone(p.Replicas), node), nil, nil
	})
	if err != nil {
		return err
	}
	var target uint64
	return a.await(ctx, fmt.Sprintf("node %d to catch up with %s/%d", node, topic, partition), func() (bool, error) {
		ls, ok, err := a.leaderState(ctx, topic, partition)
		if err != nil || !ok || !slices.Contains(ls.Members, node) {
			return false, err
		}
		if target == 0 {
			target = ls.CommitIndex
		}
		ns, err := a.b.rr.GroupStateOf(ctx, node, topic, partition)
		if err != nil || !ns.Hosted || ns.AppliedIndex < target {
			return false, nil
		}
		p := a.State().Partition(topic, partition)
		return p != nil && slices.Contains(p.ISR, node), nil
	})
}

// RemoveReplica drops node from the replica list if it is still there,
// and waits until the group's leader no longer has it as a member.
func (a *adminBackend) RemoveReplica(ctx context.Context, topic string, partition, node int32) error {
	if a.single() {
		return a.singleErr(fmt.Sprintf("remove node %d from %s/%d", node, topic, partition))
	}
	err := a.changeReplicas(ctx, topic, partition, func(p *metadata.Partition) ([]int32, []int32, error) {
		if !slices.Contains(p.Replicas, node) {
			return nil, nil, nil
		}
		if len(p.Replicas) == 1 {
			return nil, nil, fmt.Errorf("node %d is the last replica of %s/%d", node, topic, partition)
		}
		drop := func(r int32) bool { return r == node }
		return slices.DeleteFunc(slices.Clone(p.Replicas), drop), slices.DeleteFunc(slices.Clone(p.ISR), drop), nil
	})
	if err != nil {
		return err
	}
	return a.await(ctx, fmt.Sprintf("%s/%d to drop node %d", topic, partition, node), func() (bool, error) {
		ls, ok, err := a.leaderState(ctx, topic, partition)
		return ok && !slices.Contains(ls.Members, node), err
	})
}

// changeReplicas records the replicas and ISR that change returns (nil
// replicas: nothing to do; nil ISR: unchanged), keeping the leader and
// epoch, and tries again when a leader change overtook it.
func (a *adminBackend) changeReplicas(ctx context.Context, topic string, partition int32,
	change func(*metadata.Partition) (replicas, isr []int32, err error),
) error {
	for attempt := 0; ; attempt++ {
		p := a.State().Partition(topic, partition)
		if p == nil {
			return fmt.Errorf("change replicas of %s/%d: %w", topic, partition, metadata.ErrUnknownPartition)
		}
		replicas, isr, err := change(p)
		if err != nil || replicas == nil {
			return err
		}
		_, err = a.Propose(ctx, &metadata.Command{PartitionState: &metadata.PartitionStateCmd{
			Topic: topic, Partition: partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, Replicas: replicas, ISR: isr,
		}})
		if errors.Is(err, metadata.ErrStaleEpoch) && attempt < 5 {
			continue
		}
		if err != nil {
			return fmt.Errorf("record replicas %v of %s/%d: %w", replicas, topic, partition, err)
		}
		return nil
	}
}

// leaderState returns the state of the group as its leader reports it; ok
// is false while no node answers as leader.
func (a *adminBackend) leaderState(ctx context.Context, topic string, partition int32) (replica.GroupState, bool, error) {
	p := a.State().Partition(topic, partition)
	if p == nil {
		return replica.GroupState{}, false, fmt.Errorf("%s/%d: %w", topic, partition, metadata.ErrUnknownPartition)
	}
	leader := p.Leader
	if s := a.b.rr.LocalState(topic, partition); s.Hosted && s.Leader > 0 {
		leader = s.Leader
	}
	if leader <= 0 {
		return replica.GroupState{}, false, nil
	}
	s, err := a.b.rr.GroupStateOf(ctx, leader, topic, partition)
	if err != nil || !s.IsLeader {
		return replica.GroupState{}, false, nil // moving: ask again
	}
	return s, true, nil
}

// await polls cond until it holds, fails, or ctx ends.
func (a *adminBackend) await(ctx context.Context, what string, cond func() (bool, error)) error {
	tick := time.NewTicker(adminPoll)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// AddNode adds a controller peer to the __meta voters; brokers register
// themselves when they start. The peer is listed from now on.
func (a *adminBackend) AddNode(ctx context.Context, p adminapi.Peer) error {
	if a.single() {
		return a.singleErr(fmt.Sprintf("add node %d", p.ID))
	}
	if p.HasRole(config.RoleController) {
		if err := a.b.ctrl.AddVoter(ctx, p.ID, p.RaftAddr); err != nil {
			return err
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.added[p.ID] = p
	return nil
}

// RemoveNode retires a decommissioned node from __meta.
func (a *adminBackend) RemoveNode(ctx context.Context, id int32) error {
	if a.single() {
		return a.singleErr(fmt.Sprintf("remove node %d", id))
	}
	if err := a.b.ctrl.RetireNode(ctx, id); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.added, id)
	return nil
}
