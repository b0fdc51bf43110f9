// Package config reads and validates cluster.toml, the file that tells a node
// who it is and who its peers are.
//
// Parsing is strict: an unknown key, a value of the wrong type or out of
// range, or an inconsistent peer list is an error that names the file, the
// key and the reason, and every problem in the file is reported at once. A
// node never starts half-configured.
//
// The file format is the deployment guide's, plus a few optional keys the
// guide does not show: per-peer `roles` and `rack`, and partition-group Raft
// timings under `[raft]`. docs/configuration.md is the reference.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Role is a job a peer does in the cluster.
type Role string

// The roles a peer may declare. A peer without `roles` has both.
const (
	// RoleController peers vote in the `__meta` Raft group.
	RoleController Role = "controller"
	// RoleBroker peers serve Kafka clients and host partition replicas.
	RoleBroker Role = "broker"
)

// Defaults for keys that may be left out.
const (
	DefaultElectionTimeout   = 300 * time.Millisecond
	DefaultHeartbeatInterval = 30 * time.Millisecond
	DefaultSnapshotThreshold = 10000
	DefaultISRMaxLag         = 10 * time.Second
	DefaultISRMaxLagEntries  = 10000
	DefaultISRCheckInterval  = time.Second
	// DefaultReplicationFactor applies when replication_factor is left out,
	// capped at the number of broker peers.
	DefaultReplicationFactor = 3
	// DefaultMinInsyncReplicas applies when min_insync_replicas is left out,
	// capped at the replication factor.
	DefaultMinInsyncReplicas = 2
	// MinPartitionCommitTimeout is the floor of the derived commit tick of
	// partition groups: a shorter tick costs idle CPU on every group.
	MinPartitionCommitTimeout = 3 * time.Second
	// MinPartitionHeartbeatTimeout is the floor of the derived partition
	// heartbeat timeout; a leader heartbeats every tenth of it.
	MinPartitionHeartbeatTimeout = 2 * time.Second
)

// ErrInvalid is wrapped by every error about the content of a cluster file.
var ErrInvalid = errors.New("config: invalid cluster configuration")

// FieldError is one problem with a cluster file. Key is a path such as
// `peers[2].raft_port` (peers are counted from 0); Line is set only for
// syntax errors.
type FieldError struct {
	File   string
	Line   int
	Key    string
	Reason string
}

// Error reads like "node1-cluster.toml: peers[1].id: duplicate peer id 2".
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	if e.Key != "" {
		b.WriteString(": ")
		b.WriteString(e.Key)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap makes every FieldError match ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Cluster is a validated cluster.toml.
type Cluster struct {
	// File is the name the configuration was parsed under.
	File string
	// Enabled is false for a file that was read and validated but asks for
	// single-node mode.
	Enabled bool
	// NodeID is this node's id; it is always one of the peers.
	NodeID int32
	// ReplicationFactor is the default replication factor of new topics.
	ReplicationFactor int
	// MinInsyncReplicas is the default min.insync.replicas of topics.
	MinInsyncReplicas int
	Raft              Raft
	ISR               ISR
	// Peers lists every node of the cluster, this one included, in file
	// order.
	Peers []Peer
}

// Raft holds the Raft timings. The first three apply to the `__meta` group;
// the Partition* ones to every partition group.
type Raft struct {
	// ElectionTimeout is how long a follower waits for its leader before it
	// stands for election.
	ElectionTimeout time.Duration
	// HeartbeatInterval is how often the leader of `__meta` contacts its
	// followers; also the `__meta` commit tick.
	HeartbeatInterval time.Duration
	// SnapshotThreshold is the number of log entries after which a group
	// snapshots and truncates its log.
	SnapshotThreshold uint64

	// PartitionCommitTimeout is the commit tick of partition groups. Derived
	// default: max(3 s, HeartbeatInterval).
	PartitionCommitTimeout time.Duration
	// PartitionHeartbeatTimeout is how long a partition follower waits for
	// its leader. Derived default: max(2 s, ElectionTimeout).
	PartitionHeartbeatTimeout time.Duration
	// PartitionElectionTimeout is how long a partition candidate waits for
	// votes. Derived default: PartitionHeartbeatTimeout.
	PartitionElectionTimeout time.Duration
}

// ISR holds the in-sync replica rules.
type ISR struct {
	// MaxLag is how long a replica may go without contact and stay in sync.
	MaxLag time.Duration
	// MaxLagEntries is how many entries a replica may trail and stay in sync.
	MaxLagEntries int64
	// CheckInterval is how often leaders re-evaluate their ISR.
	CheckInterval time.Duration
}

// Peer is one node of the cluster.
type Peer struct {
	ID int32
	// Addr is the advertised Kafka endpoint, host:port, as written.
	Addr string
	// RaftPort is the intra-cluster port on the same host.
	RaftPort int
	// Roles is never empty; a peer without `roles` has both.
	Roles []Role
	// Rack is empty when the peer declares none.
	Rack string
}

// Host returns the host part of Addr.
func (p Peer) Host() string {
	h, _, _ := net.SplitHostPort(p.Addr)
	return h
}

// KafkaPort returns the port part of Addr.
func (p Peer) KafkaPort() int {
	_, port, _ := net.SplitHostPort(p.Addr)
	n, _ := strconv.Atoi(port)
	return n
}

// RaftAddr returns host:raft_port, the address peers dial for Raft and
// internal RPC.
func (p Peer) RaftAddr() string {
	return net.JoinHostPort(p.Host(), strconv.Itoa(p.RaftPort))
}

// HasRole reports whether the peer does r.
func (p Peer) HasRole(r Role) bool { return slices.Contains(p.Roles, r) }

// Self returns this node's peer entry.
func (c *Cluster) Self() Peer {
	p, _ := c.Peer(c.NodeID)
	return p
}

// Peer returns the peer with the given id.
func (c *Cluster) Peer(id int32) (Peer, bool) {
	for _, p := range c.Peers {
		if p.ID == id {
			return p, true
		}
	}
	return Peer{}, false
}

// Controllers returns the peers with the controller role, in file order.
func (c *Cluster) Controllers() []Peer { return c.withRole(RoleController) }

// Brokers returns the peers with the broker role, in file order.
func (c *Cluster) Brokers() []Peer { return c.withRole(RoleBroker) }

func (c *Cluster) withRole(r Role) []Peer {
	var out []Peer
	for _, p := range c.Peers {
		if p.HasRole(r) {
			out = append(out, p)
		}
	}
	return out
}

// QuorumSize is the number of controllers that make a `__meta` majority.
func (c *Cluster) QuorumSize() int { return len(c.Controllers())/2 + 1 }

// Load reads and validates the cluster file at path. Errors name the file by
// path.
func Load(path string) (*Cluster, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load cluster config: %w", err)
	}
	return Parse(path, data)
}

// Parse validates data, the content of a cluster file called name. On any
// problem it returns nil and all problems joined (errors.Join), each a
// *FieldError.
func Parse(name string, data []byte) (*Cluster, error) {
	doc, err := decodeTOML(name, data)
	if err != nil {
		return nil, err
	}
	r := &reader{file: name}
	c := r.cluster(r.root(doc))
	if len(r.errs) > 0 {
		return nil, errors.Join(r.errs...)
	}
	return c, nil
}
