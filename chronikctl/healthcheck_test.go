package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1/adminv1connect"
)

// TestMain lets the test binary stand in for the chronikctl binary when a
// script under test runs it (see chronikctlWrapper).
func TestMain(m *testing.M) {
	if os.Getenv("CHRONIKCTL_TEST_AS_MAIN") == "1" {
		os.Exit(run(context.Background(), os.Args, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// chronikctlWrapper writes an executable that runs this test binary as
// chronikctl.
func chronikctlWrapper(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "chronikctl")
	script := fmt.Sprintf("#!/bin/sh\nCHRONIKCTL_TEST_AS_MAIN=1 exec %q \"$@\"\n", self)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// metricsNode serves one node's Kafka-port HTTP side: /metrics and the
// admin API.
func metricsNode(t *testing.T, f *fakeAdmin, metrics string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(adminv1connect.NewAdminServiceHandler(f))
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, metrics)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// nodeMetrics is a node's /metrics text. Half the nodes write labels in
// the guide's order, the others sorted as Prometheus clients do.
func nodeMetrics(leader bool, commit int, sorted bool) string {
	labels := `{topic="__meta",partition="0"}`
	if sorted {
		labels = `{partition="0",topic="__meta"}`
	}
	isLeader := 0
	if leader {
		isLeader = 1
	}
	return fmt.Sprintf(`# HELP raft_is_leader 1 when this node leads the group.
# TYPE raft_is_leader gauge
raft_is_leader%[1]s %[2]d
raft_is_leader{partition="0",topic="orders"} 1
raft_term%[1]s 5
raft_commit_index%[1]s %[3]d
raft_applied_index%[1]s %[3]d
cluster_quorum_size 2
cluster_size 3
`, labels, isLeader, commit)
}

func runHealthCheck(t *testing.T, ctl string, nodes ...string) result {
	t.Helper()
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("health_check.sh needs %s: %v", tool, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{"../scripts/health_check.sh"}, nodes...)...)
	cmd.Env = append(os.Environ(), "CHRONIKCTL="+ctl, "CHRONIK_HEALTH_TIMEOUT=2")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run health_check.sh: %v", err)
	}
	t.Logf("health_check.sh %s -> exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(nodes, " "), code, out.String(), errb.String())
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

func TestHealthCheckScript(t *testing.T) {
	ctl := chronikctlWrapper(t)
	healthy := newFakeAdmin(healthyCluster())
	var addrs []string
	for i := range 3 {
		srv := metricsNode(t, healthy, nodeMetrics(i == 0, 12345-i, i%2 == 1))
		addrs = append(addrs, srv.Listener.Addr().String())
	}

	r := runHealthCheck(t, ctl, addrs...)
	if r.code != 0 {
		t.Fatalf("healthy cluster: exit %d", r.code)
	}
	for _, want := range []string{
		"Node: " + addrs[0] + "\n  ✅ LEADER\n  Commit Index: 12345\n",
		"Node: " + addrs[1] + "\n  ✅ FOLLOWER\n  Commit Index: 12344\n",
		"Cluster Quorum: 3/3 nodes reachable (2 needed)\n✅ QUORUM HEALTHY\n",
		"chronikctl cluster status (via " + addrs[0] + "):",
		"Status: HEALTHY",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	// Node 3 is down: quorum holds, but chronikctl reports the cluster
	// degraded and so does the script's exit status.
	degraded := newFakeAdmin(degradedCluster())
	a := metricsNode(t, degraded, nodeMetrics(true, 200, false))
	b := metricsNode(t, degraded, nodeMetrics(false, 200, true))
	dead := httptest.NewServer(http.NotFoundHandler())
	deadAddr := dead.Listener.Addr().String()
	dead.Close()
	r = runHealthCheck(t, ctl, a.Listener.Addr().String(), b.Listener.Addr().String(), deadAddr)
	if r.code != 1 {
		t.Errorf("degraded cluster: exit %d, want 1", r.code)
	}
	for _, want := range []string{"Node: " + deadAddr + "\n  ❌ NOT REACHABLE", "2/3 nodes reachable (2 needed)\n✅ QUORUM HEALTHY", "Status: DEGRADED"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	// Only one node answers: quorum lost. Without chronikctl the script
	// relies on the metrics alone.
	r = runHealthCheck(t, "none", b.Listener.Addr().String(), deadAddr, "127.0.0.1:1")
	if r.code != 1 || !strings.Contains(r.stdout, "1/3 nodes reachable (2 needed)\n❌ QUORUM LOST") {
		t.Errorf("one node of three: exit %d, want 1 and QUORUM LOST", r.code)
	}
	if strings.Contains(r.stdout, "chronikctl cluster status") {
		t.Error("CHRONIKCTL=none still ran chronikctl")
	}
}
