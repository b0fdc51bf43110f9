package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// threePeers is the guide's peer list, used to build test files.
const threePeers = `
[[peers]]
id = 1
addr = "node1.example.com:9092"
raft_port = 9093

[[peers]]
id = 2
addr = "node2.example.com:9092"
raft_port = 9093

[[peers]]
id = 3
addr = "node3.example.com:9092"
raft_port = 9093
`

// header is the guide's top-level keys for node 1.
const header = `enabled = true
node_id = 1
replication_factor = 3
min_insync_replicas = 2
`

func TestGuideExamples(t *testing.T) {
	for _, tc := range []struct {
		file string
		self int32
	}{
		{"node1-cluster.toml", 1},
		{"node2-cluster.toml", 2},
		{"node3-cluster.toml", 3},
		{"cluster.toml", 1},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			c, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.File != path || !c.Enabled || c.NodeID != tc.self {
				t.Fatalf("got file %q enabled %v node %d", c.File, c.Enabled, c.NodeID)
			}
			if c.ReplicationFactor != 3 || c.MinInsyncReplicas != 2 {
				t.Fatalf("rf %d min isr %d", c.ReplicationFactor, c.MinInsyncReplicas)
			}
			self := c.Self()
			if self.ID != tc.self || self.Addr != hostFor(tc.self)+":9092" || self.RaftAddr() != hostFor(tc.self)+":9093" {
				t.Fatalf("self = %+v, raft addr %s", self, self.RaftAddr())
			}
			if self.Host() != hostFor(tc.self) || self.KafkaPort() != 9092 {
				t.Fatalf("host %q port %d", self.Host(), self.KafkaPort())
			}
			if len(c.Peers) != 3 || len(c.Controllers()) != 3 || len(c.Brokers()) != 3 || c.QuorumSize() != 2 {
				t.Fatalf("peers %d controllers %d brokers %d quorum %d",
					len(c.Peers), len(c.Controllers()), len(c.Brokers()), c.QuorumSize())
			}
			for i, p := range c.Peers {
				if p.ID != int32(i+1) || !p.HasRole(RoleController) || !p.HasRole(RoleBroker) || p.Rack != "" {
					t.Fatalf("peer %d = %+v", i, p)
				}
			}
			want := Raft{
				ElectionTimeout: 300 * time.Millisecond, HeartbeatInterval: 30 * time.Millisecond,
				SnapshotThreshold: 10000, PartitionCommitTimeout: 3 * time.Second,
				PartitionHeartbeatTimeout: 2 * time.Second, PartitionElectionTimeout: 2 * time.Second,
			}
			if c.Raft != want {
				t.Fatalf("raft = %+v, want %+v", c.Raft, want)
			}
			if c.ISR != (ISR{MaxLag: 10 * time.Second, MaxLagEntries: 10000, CheckInterval: time.Second}) {
				t.Fatalf("isr = %+v", c.ISR)
			}
		})
	}
}

func hostFor(id int32) string {
	return map[int32]string{1: "node1.example.com", 2: "node2.example.com", 3: "node3.example.com"}[id]
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	_, err := Load(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q does not name the file", err)
	}
}

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		name  string
		data  string
		check func(t *testing.T, c *Cluster)
	}{
		{"disabled is still read", strings.Replace(header, "enabled = true", "enabled = false", 1) + threePeers,
			func(t *testing.T, c *Cluster) {
				if c.Enabled || len(c.Peers) != 3 {
					t.Fatalf("enabled %v peers %d", c.Enabled, len(c.Peers))
				}
			}},
		{"roles and racks", header + `
[[peers]]
id = 1
addr = "10.0.0.1:9092"
raft_port = 9093
roles = ["controller"]
rack = "a"
[[peers]]
id = 2
addr = "10.0.0.2:9092"
roles = ["broker"]
rack = "b"
[[peers]]
id = 3
addr = "10.0.0.3:9092"
roles = ["broker", "controller"]
[[peers]]
id = 4
addr = "10.0.0.4:9092"
roles = ["broker"]
`, func(t *testing.T, c *Cluster) {
			if got := ids(c.Controllers()); !slices.Equal(got, []int32{1, 3}) {
				t.Fatalf("controllers %v", got)
			}
			if got := ids(c.Brokers()); !slices.Equal(got, []int32{2, 3, 4}) {
				t.Fatalf("brokers %v", got)
			}
			if c.QuorumSize() != 2 || c.Peers[0].Rack != "a" || c.Peers[2].Rack != "" {
				t.Fatalf("quorum %d peers %+v", c.QuorumSize(), c.Peers)
			}
			if c.Peers[1].RaftPort != 9093 || c.Peers[1].RaftAddr() != "10.0.0.2:9093" {
				t.Fatalf("default raft port: %+v", c.Peers[1])
			}
		}},
		{"defaults capped by brokers", "enabled = true\nnode_id = 7\n[[peers]]\nid = 7\naddr = \"localhost:19092\"\n",
			func(t *testing.T, c *Cluster) {
				if c.ReplicationFactor != 1 || c.MinInsyncReplicas != 1 || c.QuorumSize() != 1 {
					t.Fatalf("rf %d isr %d quorum %d", c.ReplicationFactor, c.MinInsyncReplicas, c.QuorumSize())
				}
				if c.Self().RaftAddr() != "localhost:19093" {
					t.Fatalf("raft addr %s", c.Self().RaftAddr())
				}
			}},
		{"explicit min isr with default rf", "enabled = true\nnode_id = 1\nmin_insync_replicas = 1\n" + threePeers,
			func(t *testing.T, c *Cluster) {
				if c.ReplicationFactor != 3 || c.MinInsyncReplicas != 1 {
					t.Fatalf("rf %d isr %d", c.ReplicationFactor, c.MinInsyncReplicas)
				}
			}},
		{"ipv6 and inline peers", header + `peers = [
  {id = 1, addr = "[::1]:9092", raft_port = 9093},
  {id = 2, addr = "[::1]:9192", raft_port = 9193},
  {id = 3, addr = "[::1]:9292"},
]`, func(t *testing.T, c *Cluster) {
			if c.Peers[0].RaftAddr() != "[::1]:9093" || c.Peers[2].RaftAddr() != "[::1]:9293" || c.Peers[0].Host() != "::1" {
				t.Fatalf("peers %+v", c.Peers)
			}
		}},
		{"partition timings derive from raft", header + "[raft]\nelection_timeout_ms = 5000\nheartbeat_interval_ms = 1500\n" + threePeers,
			func(t *testing.T, c *Cluster) {
				r := c.Raft
				if r.PartitionCommitTimeout != 3*time.Second || r.PartitionHeartbeatTimeout != 5*time.Second ||
					r.PartitionElectionTimeout != 5*time.Second {
					t.Fatalf("raft %+v", r)
				}
			}},
		{"partition commit override leaves the heartbeat default", header + "[raft]\npartition_commit_timeout_ms = 1500\n" + threePeers,
			func(t *testing.T, c *Cluster) {
				r := c.Raft
				if r.PartitionCommitTimeout != 1500*time.Millisecond || r.PartitionHeartbeatTimeout != 2*time.Second ||
					r.PartitionElectionTimeout != 2*time.Second || r.ElectionTimeout != 300*time.Millisecond {
					t.Fatalf("raft %+v", r)
				}
			}},
		{"partition overrides", header + `[raft]
partition_heartbeat_timeout_ms = 700
partition_election_timeout_ms = 900
partition_commit_timeout_ms = 100
snapshot_threshold = 5
[isr]
max_lag_ms = 2000
max_lag_entries = 50
check_interval_ms = 250
` + threePeers, func(t *testing.T, c *Cluster) {
			want := Raft{ElectionTimeout: 300 * time.Millisecond, HeartbeatInterval: 30 * time.Millisecond,
				SnapshotThreshold: 5, PartitionCommitTimeout: 100 * time.Millisecond,
				PartitionHeartbeatTimeout: 700 * time.Millisecond, PartitionElectionTimeout: 900 * time.Millisecond}
			if c.Raft != want {
				t.Fatalf("raft %+v", c.Raft)
			}
			if c.ISR != (ISR{MaxLag: 2 * time.Second, MaxLagEntries: 50, CheckInterval: 250 * time.Millisecond}) {
				t.Fatalf("isr %+v", c.ISR)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("test.toml", []byte(tc.data))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tc.check(t, c)
		})
	}
}

func ids(ps []Peer) []int32 {
	var out []int32
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

// TestDocumentedExample keeps the reference's example file valid.
func TestDocumentedExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```toml\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no toml example in docs/configuration.md")
	}
	c, err := Parse("configuration.md", []byte(example))
	if err != nil {
		t.Fatalf("documented example: %v", err)
	}
	if len(c.Peers) != 3 || c.Raft.PartitionCommitTimeout != 3*time.Second || c.Raft.PartitionHeartbeatTimeout != 2*time.Second {
		t.Fatalf("documented example reads as %+v", c)
	}
}
