package config

import (
	"errors"
	"strings"
	"testing"
)

// peer builds one [[peers]] entry.
func peer(id, addr, extra string) string {
	return "\n[[peers]]\nid = " + id + "\naddr = " + addr + "\n" + extra + "\n"
}

// single is a valid top level for a one-peer file.
const single = "enabled = true\nnode_id = 1\nreplication_factor = 1\nmin_insync_replicas = 1\n"

// want is an expected problem: the exact key and a fragment of the reason.
type want struct{ key, reason string }

func TestInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		want []want
	}{
		// Unknown keys, wherever they are.
		{"unknown top-level key", header + "replicas = 3\n" + threePeers, []want{{"replicas", "unknown key"}}},
		{"unknown raft key", header + "[raft]\nelection_timeout = 300\n" + threePeers, []want{{"raft.election_timeout", "unknown key"}}},
		{"unknown isr key", header + "[isr]\nmax_lag = 1\n" + threePeers, []want{{"isr.max_lag", "unknown key"}}},
		{"unknown table", header + "[raft.tuning]\nx = 1\n" + threePeers, []want{{"raft.tuning", "unknown key"}}},
		{"unknown top-level table", header + "[kafka]\nport = 1\n" + threePeers, []want{{"kafka", "unknown key"}}},
		{"unknown peer key names its index", header + threePeers + "zone = \"a\"\n", []want{{"peers[2].zone", "unknown key"}}},

		// Wrong types.
		{"enabled not a boolean", strings.Replace(header, "= true", `= "yes"`, 1) + threePeers,
			[]want{{"enabled", `want a boolean, got string "yes"`}}},
		{"node_id a string", strings.Replace(header, "node_id = 1", `node_id = "1"`, 1) + threePeers,
			[]want{{"node_id", "want an integer, got string"}}},
		{"node_id a float", strings.Replace(header, "node_id = 1", `node_id = 1.0`, 1) + threePeers,
			[]want{{"node_id", "want an integer, got float"}}},
		{"replication_factor a boolean", strings.Replace(header, "replication_factor = 3", "replication_factor = true", 1) + threePeers,
			[]want{{"replication_factor", "want an integer, got boolean"}}},
		{"timing a string", header + "[raft]\nelection_timeout_ms = \"300ms\"\n" + threePeers,
			[]want{{"raft.election_timeout_ms", "want an integer, got string"}}},
		{"isr a datetime", header + "[isr]\nmax_lag_ms = 2024-01-01\n" + threePeers,
			[]want{{"isr.max_lag_ms", "want an integer, got datetime"}}},
		{"raft not a table", header + "raft = 5\n" + threePeers, []want{{"raft", "want a table, got integer 5"}}},
		{"isr not a table", header + "isr = [1]\n" + threePeers, []want{{"isr", "want a table, got array"}}},
		{"peers not an array", header + "peers = 5\n", []want{{"peers", "want an array of tables, got integer"}}},
		{"peer not a table", header + "peers = [1, 2]\n", []want{{"peers[0]", "want a table"}, {"peers[1]", "want a table"}}},
		{"peer addr an integer", single + peer("1", "9092", "raft_port = 9093"),
			[]want{{"peers[0].addr", "want a string, got integer 9092"}}},
		{"raft_port a string", single + peer("1", `"h1:9092"`, `raft_port = "9093"`),
			[]want{{"peers[0].raft_port", "want an integer, got string"}}},
		{"roles not an array", single + peer("1", `"h1:9092"`, `roles = "broker"`),
			[]want{{"peers[0].roles", "want an array of strings"}}},
		{"role not a string", single + peer("1", `"h1:9092"`, `roles = ["broker", 2]`),
			[]want{{"peers[0].roles[1]", "want a string, got integer 2"}}},
		{"rack not a string", single + peer("1", `"h1:9092"`, `rack = 1`), []want{{"peers[0].rack", "want a string"}}},

		// Required keys.
		{"enabled missing", strings.Replace(header, "enabled = true\n", "", 1) + threePeers, []want{{"enabled", "required"}}},
		{"node_id missing", strings.Replace(header, "node_id = 1\n", "", 1) + threePeers, []want{{"node_id", "required"}}},
		{"peers missing", header, []want{{"peers", "required"}}},
		{"peers empty", header + "peers = []\n", []want{{"peers", "at least one"}}},
		{"peer id missing", single + "[[peers]]\naddr = \"h1:9092\"\n", []want{{"peers[0].id", "required"}}},
		{"peer addr missing", single + "[[peers]]\nid = 1\nraft_port = 9093\n", []want{{"peers[0].addr", "required"}}},

		// Ranges.
		{"node_id zero", strings.Replace(header, "node_id = 1", "node_id = 0", 1) + threePeers,
			[]want{{"node_id", "0 is out of range 1-255"}}},
		{"node_id too big", strings.Replace(header, "node_id = 1", "node_id = 256", 1) + threePeers,
			[]want{{"node_id", "256 is out of range 1-255"}}},
		{"node_id negative", strings.Replace(header, "node_id = 1", "node_id = -1", 1) + threePeers,
			[]want{{"node_id", "out of range"}}},
		{"peer id out of range", header + peer("1", `"h1:9092"`, "") + peer("300", `"h2:9092"`, ""),
			[]want{{"peers[1].id", "300 is out of range 1-255"}}},
		{"raft_port zero", single + peer("1", `"h1:9092"`, "raft_port = 0"), []want{{"peers[0].raft_port", "out of range 1-65535"}}},
		{"raft_port too big", single + peer("1", `"h1:9092"`, "raft_port = 65536"), []want{{"peers[0].raft_port", "out of range"}}},
		{"raft_port default overflows", single + peer("1", `"h1:65535"`, ""),
			[]want{{"peers[0].raft_port", "required when the Kafka port is 65535"}}},
		{"replication_factor zero", strings.Replace(header, "replication_factor = 3", "replication_factor = 0", 1) + threePeers,
			[]want{{"replication_factor", "out of range"}}},
		{"min isr zero", strings.Replace(header, "min_insync_replicas = 2", "min_insync_replicas = 0", 1) + threePeers,
			[]want{{"min_insync_replicas", "out of range"}}},
		{"timing zero", header + "[raft]\nelection_timeout_ms = 0\n" + threePeers, []want{{"raft.election_timeout_ms", "out of range"}}},
		{"election timeout below raft's floor", header + "[raft]\nelection_timeout_ms = 4\nheartbeat_interval_ms = 1\n" + threePeers,
			[]want{{"raft.election_timeout_ms", "4 is out of range 5-3600000"}}},
		{"partition timeout below raft's floor", header + "[raft]\npartition_heartbeat_timeout_ms = 4\npartition_election_timeout_ms = 3\n" + threePeers,
			[]want{{"raft.partition_heartbeat_timeout_ms", "out of range 5-"}, {"raft.partition_election_timeout_ms", "out of range 5-"}}},
		{"timing beyond an hour", header + "[raft]\npartition_commit_timeout_ms = 3600001\n" + threePeers,
			[]want{{"raft.partition_commit_timeout_ms", "out of range"}}},
		{"snapshot threshold zero", header + "[raft]\nsnapshot_threshold = 0\n" + threePeers,
			[]want{{"raft.snapshot_threshold", "out of range"}}},
		{"isr entries negative", header + "[isr]\nmax_lag_entries = -5\n" + threePeers, []want{{"isr.max_lag_entries", "out of range"}}},
		{"isr check interval zero", header + "[isr]\ncheck_interval_ms = 0\n" + threePeers, []want{{"isr.check_interval_ms", "out of range"}}},

		// Consistency across keys and peers.
		{"duplicate peer id", header + peer("1", `"h1:9092"`, "") + peer("2", `"h2:9092"`, "") + peer("2", `"h3:9092"`, ""),
			[]want{{"peers[2].id", "duplicate peer id 2 (first used by peers[1])"}}},
		{"duplicate addr and raft_port", header + peer("1", `"h1:9092"`, "raft_port = 9093") + peer("2", `"h1:9092"`, "raft_port = 9093") + peer("3", `"h3:9092"`, ""),
			[]want{{"peers[1].addr", "h1:9092 is already used by peers[0].addr"}, {"peers[1].raft_port", "h1:9093 is already used by peers[0].raft_port"}}},
		{"same addr, other raft_port", header + peer("1", `"h1:9092"`, "raft_port = 9093") + peer("2", `"H1:9092"`, "raft_port = 9094") + peer("3", `"h3:9092"`, ""),
			[]want{{"peers[1].addr", "is already used by peers[0].addr"}}},
		{"raft_port on another peer's kafka port", header + peer("1", `"h1:9092"`, "raft_port = 9094") + peer("2", `"h1:9094"`, "raft_port = 9095") + peer("3", `"h3:9092"`, ""),
			[]want{{"peers[1].addr", "h1:9094 is already used by peers[0].raft_port"}}},
		{"raft_port equals own kafka port", header + peer("1", `"h1:9092"`, "raft_port = 9092") + peer("2", `"h2:9092"`, "") + peer("3", `"h3:9092"`, ""),
			[]want{{"peers[0].raft_port", "h1:9092 is already used by peers[0].addr"}}},
		{"node_id not among peers", strings.Replace(header, "node_id = 1", "node_id = 4", 1) + threePeers,
			[]want{{"node_id", "node 4 is not among the peers"}}},
		{"min isr above rf", strings.Replace(strings.Replace(header, "min_insync_replicas = 2", "min_insync_replicas = 3", 1), "replication_factor = 3", "replication_factor = 2", 1) + threePeers,
			[]want{{"min_insync_replicas", "3 is more than replication_factor 2"}}},
		{"min isr above default rf", "enabled = true\nnode_id = 1\nmin_insync_replicas = 2\n" + peer("1", `"h1:9092"`, ""),
			[]want{{"min_insync_replicas", "2 is more than replication_factor 1"}}},
		{"rf above brokers", header + peer("1", `"h1:9092"`, `roles = ["controller"]`) + peer("2", `"h2:9092"`, "") + peer("3", `"h3:9092"`, ""),
			[]want{{"replication_factor", `3 is more than the 2 peers with the "broker" role`}}},
		{"rf above peers", strings.Replace(header, "replication_factor = 3", "replication_factor = 4", 1) + threePeers,
			[]want{{"replication_factor", "4 is more than the 3 peers"}}},
		{"no controller", header + peer("1", `"h1:9092"`, `roles = ["broker"]`) + peer("2", `"h2:9092"`, `roles = ["broker"]`) + peer("3", `"h3:9092"`, `roles = ["broker"]`),
			[]want{{"peers", `no peer has the "controller" role`}}},
		{"no broker", single + peer("1", `"h1:9092"`, `roles = ["controller"]`),
			[]want{{"peers", `no peer has the "broker" role`}}},
		{"empty roles", single + peer("1", `"h1:9092"`, `roles = []`), []want{{"peers[0].roles", "at least one role"}}},
		{"unknown role", single + peer("1", `"h1:9092"`, `roles = ["leader"]`), []want{{"peers[0].roles[0]", `unknown role "leader"`}}},
		{"role twice", single + peer("1", `"h1:9092"`, `roles = ["broker", "controller", "broker"]`),
			[]want{{"peers[0].roles[2]", `role "broker" listed twice`}}},
		{"heartbeat equals election", header + "[raft]\nelection_timeout_ms = 30\n" + threePeers,
			[]want{{"raft.heartbeat_interval_ms", "30 must be less than election_timeout_ms (30)"}}},
		{"heartbeat above election", header + "[raft]\nelection_timeout_ms = 300\nheartbeat_interval_ms = 500\n" + threePeers,
			[]want{{"raft.heartbeat_interval_ms", "500 must be less than election_timeout_ms (300)"}}},

		// Addresses.
		{"addr without port", single + peer("1", `"h1"`, ""), []want{{"peers[0].addr", `"h1" is not host:port`}}},
		{"addr port not a number", single + peer("1", `"h1:kafka"`, ""), []want{{"peers[0].addr", `port "kafka" is not a number`}}},
		{"addr port zero", single + peer("1", `"h1:0"`, ""), []want{{"peers[0].addr", "not a number in 1-65535"}}},
		{"addr port too big", single + peer("1", `"h1:70000"`, ""), []want{{"peers[0].addr", "not a number in 1-65535"}}},
		{"addr empty host", single + peer("1", `":9092"`, ""), []want{{"peers[0].addr", "host is empty"}}},
		{"addr bad host", single + peer("1", `"node 1:9092"`, ""), []want{{"peers[0].addr", "neither an IP address nor a valid DNS name"}}},
		{"addr host with empty label", single + peer("1", `"node1..com:9092"`, ""), []want{{"peers[0].addr", "valid DNS name"}}},
		{"addr wildcard", single + peer("1", `"0.0.0.0:9092"`, ""), []want{{"peers[0].addr", "wildcard address"}}},
		{"addr ipv6 without brackets", single + peer("1", `"::1:9092"`, ""), []want{{"peers[0].addr", "not host:port"}}},

		// Syntax.
		{"syntax error names the line", "enabled = true\nnode_id = = 1\n", []want{{"", "expected value"}}},
		{"duplicate key is a syntax error", "enabled = true\nenabled = false\n", []want{{"", "already been defined"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("node1-cluster.toml", []byte(tc.data))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", c)
			}
			if c != nil {
				t.Fatalf("Parse returned a cluster with an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not match ErrInvalid: %v", err)
			}
			t.Logf("%v", err)
			got := fieldErrors(t, err)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(got), len(tc.want), err)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.File != "node1-cluster.toml" || g.Key != w.key || !strings.Contains(g.Reason, w.reason) {
					t.Errorf("problem %d = %q, want key %q and reason containing %q", i, g.Error(), w.key, w.reason)
				}
			}
		})
	}
}

// fieldErrors unpacks a joined error into its FieldErrors, failing on
// anything else.
func fieldErrors(t *testing.T, err error) []*FieldError {
	t.Helper()
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var out []*FieldError
	for _, e := range errs {
		fe, ok := e.(*FieldError)
		if !ok {
			t.Fatalf("%T is not a *FieldError: %v", e, e)
		}
		out = append(out, fe)
	}
	return out
}

// TestAllProblemsAtOnce checks that one bad file yields every problem, in
// file order, rather than only the first.
func TestAllProblemsAtOnce(t *testing.T) {
	data := `enabled = "yes"
node_id = 0
replication_factor = 3
min_insync_replicas = 1.5
colour = "blue"

[raft]
election_timeout_ms = 30
heartbeat_interval_ms = 30

[[peers]]
id = 1
addr = "h1:9092"

[[peers]]
id = 1
addr = "h1:9092"
rack = 7
`
	_, err := Parse("node1-cluster.toml", []byte(data))
	if err == nil {
		t.Fatal("accepted")
	}
	got := fieldErrors(t, err)
	var keys []string
	for _, fe := range got {
		keys = append(keys, fe.Key)
	}
	want := []string{
		"enabled", "node_id", "min_insync_replicas", "raft.heartbeat_interval_ms",
		"peers[1].rack", "peers[1].id", "peers[1].addr", "peers[1].raft_port", "colour",
		"replication_factor",
	}
	if strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Fatalf("keys = %v\nwant   %v\n%v", keys, want, err)
	}
	if !strings.Contains(err.Error(), "node1-cluster.toml: peers[1].id: duplicate peer id 1") {
		t.Fatalf("message lacks the duplicate id line:\n%v", err)
	}
	if !strings.Contains(err.Error(), "\n") {
		t.Fatalf("problems are not one per line:\n%v", err)
	}
}

func TestSyntaxErrorHasLine(t *testing.T) {
	_, err := Parse("x.toml", []byte("enabled = true\n\nnode_id = = 1\n"))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Line != 3 || !strings.HasPrefix(err.Error(), "x.toml:3: ") {
		t.Fatalf("err = %v (%#v)", err, fe)
	}
}
