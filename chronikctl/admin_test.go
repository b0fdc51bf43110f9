package main

import (
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	adminv1 "github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1"
)

func TestClusterStatusHealthy(t *testing.T) {
	addr := newFakeAdmin(healthyCluster()).serve(t)
	r := mustRun(t, exitOK, "--server", addr, "cluster", "status")
	golden(t, "cluster_status_healthy", r.stdout)

	r = mustRun(t, exitOK, "--server", addr, "cluster", "status", "--partitions", "--topic", "orders")
	golden(t, "cluster_status_partitions", r.stdout)

	r = mustRun(t, exitOK, "cluster", "status", "--server", addr, "--json")
	golden(t, "cluster_status_healthy_json", r.stdout)
	var doc struct {
		Healthy bool `json:"healthy"`
		Status  struct {
			Meta struct {
				CommitIndex string `json:"commit_index"`
			} `json:"meta"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("--json output is not JSON: %v", err)
	}
	if !doc.Healthy || doc.Status.Meta.CommitIndex != "12345" {
		t.Errorf("--json: healthy %v commit %q, want true and 12345", doc.Healthy, doc.Status.Meta.CommitIndex)
	}
}

func TestClusterStatusDegraded(t *testing.T) {
	addr := newFakeAdmin(degradedCluster()).serve(t)
	r := mustRun(t, exitFailure, "--server", addr, "cluster", "status")
	golden(t, "cluster_status_degraded", r.stdout)
	if r.stderr != "" {
		t.Errorf("a degraded cluster is a report, not an error; stderr: %q", r.stderr)
	}
	r = mustRun(t, exitFailure, "--server", addr, "--json", "cluster", "status")
	var doc struct {
		Healthy  bool     `json:"healthy"`
		Problems []string `json:"problems"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Healthy || len(doc.Problems) != 4 {
		t.Errorf("--json: healthy %v problems %q, want false and 4 problems", doc.Healthy, doc.Problems)
	}
}

func TestClusterStatusNoQuorum(t *testing.T) {
	st := healthyCluster()
	st.Nodes[1].Alive, st.Nodes[2].Alive = false, false
	st.Meta.LeaderId, st.Meta.VotersAlive = 0, 1
	st.Nodes[0].IsMetaLeader = false
	addr := newFakeAdmin(st).serve(t)
	r := mustRun(t, exitFailure, "--server", addr, "cluster", "status")
	for _, want := range []string{"__meta has no leader", "__meta has no quorum: 1 of 3 voters alive, 2 needed", "node 2 is down"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestClusterStatusUnreachable(t *testing.T) {
	// A port nothing listens on: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	r := mustRun(t, exitUnreachable, "--server", closed, "cluster", "status")
	if !strings.HasPrefix(r.stderr, "chronikctl: cluster status: cannot reach "+closed) {
		t.Errorf("stderr %q does not say the server cannot be reached", r.stderr)
	}

	// A server that accepts but never answers: our own deadline.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var conns []net.Conn
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		hang.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	r = mustRun(t, exitUnreachable, "--server", hang.Addr().String(), "--timeout", "300ms", "cluster", "status")
	if !strings.Contains(r.stderr, "cannot reach") {
		t.Errorf("stderr %q does not say the server cannot be reached", r.stderr)
	}
}

func TestClusterStatusServerError(t *testing.T) {
	f := newFakeAdmin(healthyCluster())
	f.statusErr = connect.NewError(connect.CodeUnavailable, errors.New("no active controller: __meta has no leader"))
	addr := f.serve(t)
	r := mustRun(t, exitFailure, "--server", addr, "cluster", "status")
	if want := "chronikctl: cluster status: no active controller: __meta has no leader\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
}

func TestServerFromEnvAndFlags(t *testing.T) {
	addr := newFakeAdmin(healthyCluster()).serve(t)
	t.Setenv("CHRONIK_ADMIN_ADDR", addr)
	mustRun(t, exitOK, "cluster", "status")

	// A flag after the command wins over the env var and the global flag.
	t.Setenv("CHRONIK_ADMIN_ADDR", "127.0.0.1:1")
	mustRun(t, exitUnreachable, "cluster", "status")
	mustRun(t, exitOK, "--server", "127.0.0.1:1", "cluster", "status", "--server", addr)
}

func TestTransferLeader(t *testing.T) {
	st := healthyCluster()
	st.Nodes = append(st.Nodes, fakeNode(4, roleBroker))
	f := newFakeAdmin(st)
	addr := f.serve(t)

	r := mustRun(t, exitOK, "--server", addr, "transfer-leader", "--topic", "orders", "--partition", "1", "--to", "3")
	golden(t, "transfer_leader_partition", r.stdout)

	r = mustRun(t, exitOK, "--server", addr, "transfer-leader", "--meta")
	golden(t, "transfer_leader_meta", r.stdout)

	// Node 2 now leads __meta and payments/0.
	r = mustRun(t, exitOK, "--server", addr, "transfer-leader", "--node", "2", "--to", "1")
	golden(t, "transfer_leader_node", r.stdout)

	r = mustRun(t, exitOK, "--server", addr, "--json", "transfer-leader", "--topic", "orders", "--partition", "1", "--to", "3")
	if !strings.Contains(r.stdout, `"changes": []`) {
		t.Errorf("a no-op transfer should list no changes: %s", r.stdout)
	}

	errCases := []struct {
		args   []string
		stderr string
	}{
		{[]string{"--topic", "orders", "--partition", "1", "--to", "4"},
			"chronikctl: transfer-leader: node 4 is not a replica of orders/1\n"},
		{[]string{"--topic", "orders", "--partition", "1", "--to", "9"},
			"chronikctl: transfer-leader: node 9 not found\n"},
		{[]string{"--node", "9"}, "chronikctl: transfer-leader: node 9 not found\n"},
		{[]string{"--topic", "nope", "--partition", "0"}, "chronikctl: transfer-leader: topic nope not found\n"},
		{[]string{"--meta", "--to", "4"}, "chronikctl: transfer-leader: node 4 is not a __meta voter\n"},
		{[]string{"--meta", "--node", "1"},
			"chronikctl: transfer-leader: give exactly one of --meta, --topic with --partition, or --node\n"},
		{[]string{"--topic", "orders"}, "chronikctl: transfer-leader: --topic and --partition go together\n"},
	}
	for _, c := range errCases {
		r := mustRun(t, exitFailure, append([]string{"--server", addr, "transfer-leader"}, c.args...)...)
		if r.stderr != c.stderr {
			t.Errorf("transfer-leader %v: stderr %q, want %q", c.args, r.stderr, c.stderr)
		}
	}
}

func TestRebalance(t *testing.T) {
	f := newFakeAdmin(healthyCluster())
	addr := f.serve(t)

	r := mustRun(t, exitOK, "--server", addr, "rebalance", "status")
	golden(t, "rebalance_status_idle", r.stdout)

	r = mustRun(t, exitOK, "--server", addr, "rebalance", "--dry-run")
	golden(t, "rebalance_plan_dry_run", r.stdout)

	r = mustRun(t, exitOK, "--server", addr, "rebalance")
	golden(t, "rebalance_plan_started", r.stdout)

	r = mustRun(t, exitFailure, "--server", addr, "rebalance")
	if want := "chronikctl: rebalance: rebalance rb-1 is already running\n"; r.stderr != want {
		t.Errorf("second rebalance: stderr %q, want %q", r.stderr, want)
	}

	r = mustRun(t, exitOK, "--server", addr, "rebalance", "status")
	golden(t, "rebalance_status_running", r.stdout)

	r = mustRun(t, exitOK, "--server", addr, "rebalance", "cancel", "--id", "rb-1")
	golden(t, "rebalance_status_cancelled", r.stdout)

	r = mustRun(t, exitFailure, "--server", addr, "rebalance", "status", "--id", "rb-7")
	if want := "chronikctl: rebalance status: rebalance rb-7 not found\n"; r.stderr != want {
		t.Errorf("unknown rebalance: stderr %q, want %q", r.stderr, want)
	}

	r = mustRun(t, exitFailure, "--server", addr, "rebalance", "strat")
	if want := "chronikctl: rebalance: unexpected argument \"strat\"\n"; r.stderr != want {
		t.Errorf("misspelt subcommand: stderr %q, want %q", r.stderr, want)
	}

	r = mustRun(t, exitOK, "--server", addr, "rebalance", "--wait", "--interval", "1ms")
	golden(t, "rebalance_wait", r.stdout)

	r = mustRun(t, exitOK, "--server", addr, "--json", "rebalance", "status")
	var st struct {
		RebalanceID string `json:"rebalance_id"`
		State       string `json:"state"`
		StepsDone   int    `json:"steps_done"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st.RebalanceID != "rb-2" || st.State != "REBALANCE_STATE_DONE" || st.StepsDone != 3 {
		t.Errorf("status after --wait: %+v", st)
	}
}

func TestRebalanceWaitFailed(t *testing.T) {
	f := newFakeAdmin(healthyCluster())
	f.failStep = 2
	addr := f.serve(t)
	r := mustRun(t, exitFailure, "--server", addr, "rebalance", "--wait", "--interval", "1ms")
	golden(t, "rebalance_wait_failed", r.stdout)
	want := "chronikctl: rebalance: rebalance rb-1 failed: move orders/1 add 4 remove 3: replica did not catch up\n"
	if r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	r = mustRun(t, exitFailure, "--server", addr, "rebalance", "cancel")
	if want := "chronikctl: rebalance cancel: no rebalance is running\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
}

func TestNodeCommands(t *testing.T) {
	f := newFakeAdmin(healthyCluster())
	addr := f.serve(t)

	r := mustRun(t, exitOK, "--server", addr, "node", "list")
	golden(t, "node_list", r.stdout)

	r = mustRun(t, exitOK, "--server", addr, "node", "drain", "1")
	golden(t, "node_drain", r.stdout)

	r = mustRun(t, exitOK, "--server", addr, "node", "list")
	golden(t, "node_list_drained", r.stdout)

	r = mustRun(t, exitOK, "--server", addr, "node", "add", "--id", "4", "--addr", "127.0.0.4:9092",
		"--raft-port", "9093", "--roles", "broker", "--rack", "r2")
	golden(t, "node_add", r.stdout)

	// Node 4 starts and heartbeats; now it can take replicas.
	f.mu.Lock()
	f.st.Nodes[3].Alive = true
	f.mu.Unlock()

	r = mustRun(t, exitOK, "--server", addr, "node", "decommission", "3", "--dry-run")
	golden(t, "node_decommission_dry_run", r.stdout)

	r = mustRun(t, exitOK, "--server", addr, "node", "decommission", "3", "--wait", "--interval", "1ms")
	golden(t, "node_decommission_wait", r.stdout)

	r = mustRun(t, exitOK, "--server", addr, "--json", "node", "list")
	var nodes struct {
		Nodes []struct {
			NodeID int    `json:"node_id"`
			State  string `json:"state"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &nodes); err != nil {
		t.Fatal(err)
	}
	if len(nodes.Nodes) != 4 || nodes.Nodes[2].State != adminv1.NodeState_NODE_STATE_DECOMMISSIONING.String() {
		t.Errorf("node list --json after decommission: %+v", nodes)
	}

	errCases := []struct {
		args   []string
		stderr string
	}{
		{[]string{"drain", "9"}, "chronikctl: node drain: node 9 not found\n"},
		{[]string{"decommission", "9"}, "chronikctl: node decommission: node 9 not found\n"},
		{[]string{"drain", "x"}, "chronikctl: node drain: bad node id \"x\"\n"},
		{[]string{"add", "--id", "2", "--addr", "127.0.0.2:9092", "--raft-port", "9093"},
			"chronikctl: node add: node 2 already exists\n"},
		{[]string{"add", "--id", "5", "--addr", "no-port", "--raft-port", "9093"},
			"chronikctl: node add: kafka_addr \"no-port\": address no-port: missing port in address\n"},
		{[]string{"add", "--id", "5", "--addr", "h:1", "--raft-port", "9093", "--roles", "witness"},
			"chronikctl: node add: unknown role \"witness\" (want controller or broker)\n"},
	}
	for _, c := range errCases {
		r := mustRun(t, exitFailure, append([]string{"--server", addr, "node"}, c.args...)...)
		if r.stderr != c.stderr {
			t.Errorf("node %v: stderr %q, want %q", c.args, r.stderr, c.stderr)
		}
	}
}
