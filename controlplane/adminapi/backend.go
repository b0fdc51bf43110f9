package adminapi

import (
	"context"
	"slices"

	"github.com/chronik-stream/chronik/controlplane/config"
	"github.com/chronik-stream/chronik/controlplane/metadata"
)

// Backend is what the admin API needs from the node it runs on; the broker
// implements it over the controller and the partition Raft groups.
type Backend interface {
	// NodeID is this node's id.
	NodeID() int32
	// State is the current metadata image. Callers do not modify it.
	State() *metadata.State
	// Propose applies cmd through the __meta leader and returns once this
	// node's image has applied it.
	Propose(ctx context.Context, cmd *metadata.Command) (metadata.Result, error)
	// Meta describes the __meta group as this node sees it.
	Meta() MetaStatus
	// Peers lists the configured peers: cluster.toml's, or just this node
	// in single-node mode.
	Peers() []Peer
	// ControllerAddr is the Kafka address of the active controller, for
	// forwarding; ok is false while there is none.
	ControllerAddr() (kafkaAddr string, ok bool)
	// TransferMeta hands the __meta leadership to node to (0: the best
	// candidate) and returns the new leader.
	TransferMeta(ctx context.Context, to int32) (newLeader int32, err error)
	// TransferPartition hands a partition's leadership to node to, on
	// whichever node leads it now, and returns the new leader.
	TransferPartition(ctx context.Context, topic string, partition, to int32) (newLeader int32, err error)
	// AddReplica makes node an extra member of the partition: it records
	// the replica list with node appended (a group's membership follows
	// its replica list in the metadata), and returns once the group's
	// leader has node as a member and node has applied what the group had
	// committed when it joined. A node already listed is only waited for.
	AddReplica(ctx context.Context, topic string, partition, node int32) error
	// RemoveReplica takes node out of the partition: out of the replica
	// list if it is still there (never the last one), and it returns once
	// the group's configuration no longer has it.
	RemoveReplica(ctx context.Context, topic string, partition, node int32) error
	// AddNode registers a new peer, and adds it as a __meta voter when it
	// is a controller.
	AddNode(ctx context.Context, n Peer) error
	// RemoveNode removes a decommissioned node that hosts no replica from
	// __meta: its broker record and, when it is a voter, its vote. The
	// caller is the __meta leader and id is not this node.
	RemoveNode(ctx context.Context, id int32) error
}

// Peer is one configured node.
type Peer struct {
	ID        int32
	Roles     []config.Role
	KafkaAddr string // host:port
	RaftAddr  string // host:port
	Rack      string
}

// HasRole reports whether the peer plays role r; a peer without roles has
// both, as in cluster.toml.
func (p Peer) HasRole(r config.Role) bool {
	return len(p.Roles) == 0 || slices.Contains(p.Roles, r)
}

// MetaStatus describes the __meta Raft group. On the leader it is the
// leader's view; elsewhere VotersAlive may be empty.
type MetaStatus struct {
	LeaderID     int32 // 0 when there is none
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	QuorumSize   int32
	ClusterSize  int32
	// VotersAlive lists the voters in contact with the leader, the leader
	// included.
	VotersAlive []int32
}

// roleStrings are the metadata spellings of config roles.
func roleStrings(roles []config.Role) []string {
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = string(r)
	}
	return out
}

// hasRole reports whether a registered broker plays role r; a broker
// registered without roles has both.
func hasRole(b *metadata.Broker, r config.Role) bool {
	return len(b.Roles) == 0 || slices.Contains(b.Roles, string(r))
}
