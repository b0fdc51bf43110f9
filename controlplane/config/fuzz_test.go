package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse: it must never panic, must be
// deterministic, and whatever it accepts must satisfy the rules it enforces.
func FuzzParse(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*.toml"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed files: %v", err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"", "=", "[[peers]]", "peers = [1]", "raft = 5", header + "[raft.x]\n" + threePeers,
		single + peer("1", `"[::1]:65535"`, `roles = ["broker", "broker"]`),
		single + peer("1", `"h:1"`, `raft_port = 2`) + peer("1", `"H:2"`, ""),
		"enabled = true\nnode_id = 255\n" + peer("255", `"a-b_c.d:9"`, `roles = ["controller", "broker"]`),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data)
		c2, err2 := Parse("fuzz.toml", data)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("not deterministic: %v / %v", err, err2)
		}
		if err != nil {
			if c != nil {
				t.Fatal("cluster returned with an error")
			}
			for _, fe := range fieldErrors(t, err) {
				if fe.File != "fuzz.toml" || fe.Reason == "" || !errors.Is(fe, ErrInvalid) {
					t.Fatalf("bad problem %#v", fe)
				}
			}
			return
		}
		checkAccepted(t, c)
		if c2.NodeID != c.NodeID || len(c2.Peers) != len(c.Peers) {
			t.Fatal("not deterministic")
		}
	})
}

// checkAccepted asserts the invariants of every cluster Parse returns.
func checkAccepted(t *testing.T, c *Cluster) {
	t.Helper()
	if c.Self().ID != c.NodeID || c.NodeID < 1 || c.NodeID > 255 {
		t.Fatalf("node %d, self %+v", c.NodeID, c.Self())
	}
	if len(c.Controllers()) < 1 || c.QuorumSize() < 1 || c.QuorumSize() > len(c.Controllers()) {
		t.Fatalf("controllers %d quorum %d", len(c.Controllers()), c.QuorumSize())
	}
	if c.ReplicationFactor < 1 || c.ReplicationFactor > len(c.Brokers()) ||
		c.MinInsyncReplicas < 1 || c.MinInsyncReplicas > c.ReplicationFactor {
		t.Fatalf("rf %d min isr %d brokers %d", c.ReplicationFactor, c.MinInsyncReplicas, len(c.Brokers()))
	}
	if c.Raft.HeartbeatInterval <= 0 || c.Raft.HeartbeatInterval >= c.Raft.ElectionTimeout ||
		c.Raft.PartitionCommitTimeout <= 0 || c.Raft.PartitionHeartbeatTimeout <= 0 || c.Raft.PartitionElectionTimeout <= 0 {
		t.Fatalf("raft %+v", c.Raft)
	}
	seen := map[int32]bool{}
	addrs := map[string]bool{}
	for _, p := range c.Peers {
		if seen[p.ID] || p.ID < 1 || p.ID > 255 || len(p.Roles) == 0 {
			t.Fatalf("peer %+v", p)
		}
		seen[p.ID] = true
		if p.KafkaPort() < 1 || p.RaftPort < 1 || p.RaftPort > 65535 || p.Host() == "" {
			t.Fatalf("peer %+v", p)
		}
		for _, a := range []string{p.Addr, p.RaftAddr()} {
			if addrs[a] {
				t.Fatalf("address %s used twice", a)
			}
			addrs[a] = true
		}
	}
}
