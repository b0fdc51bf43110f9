package adminapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The chronikctl binary, built once for the package's tests from the
// workspace's chronikctl module.
var (
	ctlOnce sync.Once
	ctlDir  string
	ctlPath string
	ctlErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if ctlDir != "" {
		os.RemoveAll(ctlDir)
	}
	os.Exit(code)
}

// chronikctl returns the path of a freshly built chronikctl.
func chronikctl(t *testing.T) string {
	t.Helper()
	ctlOnce.Do(func() {
		root, err := workspaceRoot()
		if err != nil {
			ctlErr = err
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			ctlErr = fmt.Errorf("find the go command: %w", err)
			return
		}
		if ctlDir, ctlErr = os.MkdirTemp("", "adminapi-chronikctl-"); ctlErr != nil {
			return
		}
		ctlPath = filepath.Join(ctlDir, "chronikctl")
		cmd := exec.Command(goBin, "build", "-o", ctlPath, "./chronikctl")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			ctlErr = fmt.Errorf("go build ./chronikctl: %w\n%s", err, out)
		}
	})
	if ctlErr != nil {
		t.Fatal(ctlErr)
	}
	return ctlPath
}

// workspaceRoot is the directory of the go.work above this package.
func workspaceRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the test's directory")
		}
		dir = parent
	}
}

// ctl runs chronikctl against addr and returns its exit code and output.
func ctl(t *testing.T, addr string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chronikctl(t), append([]string{"--server", addr, "--timeout", "10s"}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run chronikctl %v: %v", args, err)
	}
	t.Logf("chronikctl %s -> %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return code, out.String(), errOut.String()
}

// wantCtl runs chronikctl and checks its exit code and that its output
// contains every one of want.
func wantCtl(t *testing.T, addr string, wantCode int, want []string, args ...string) string {
	t.Helper()
	code, out, errOut := ctl(t, addr, args...)
	if code != wantCode {
		t.Errorf("chronikctl %v: exit %d, want %d", args, code, wantCode)
	}
	for _, w := range want {
		if !strings.Contains(out+errOut, w) {
			t.Errorf("chronikctl %v: output lacks %q", args, w)
		}
	}
	return out
}

func addrOf(c *fakeCluster, id int32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs[id]
}

func TestChronikctlClusterStatus(t *testing.T) {
	c, _, _ := threeNodes(t)
	a1, a2 := addrOf(c, 1), addrOf(c, 2)
	wantCtl(t, a1, 0, []string{"Cluster: fake-cluster", "__meta:      leader 1  term 5", "3/3 voters alive",
		"Partitions:  8 total, 0 under-replicated, 0 offline, 0 below min ISR", "Status: HEALTHY"}, "cluster", "status")
	wantCtl(t, a2, 0, []string{"Status: HEALTHY"}, "cluster", "status") // forwarded
	wantCtl(t, a1, 0, []string{"payments", "2,3"}, "cluster", "status", "--partitions", "--topic", "payments")
	wantCtl(t, a1, 1, []string{"unknown topic nope"}, "cluster", "status", "--partitions", "--topic", "nope")

	c.setAlive(3, false)
	c.setISR("orders", 0, []int32{1, 2})
	wantCtl(t, a1, 1, []string{"Status: DEGRADED", "node 3 is down", "2 partitions offline", "1 partition under-replicated"},
		"cluster", "status")
	wantCtl(t, deadAddr(t), 2, []string{"cannot reach"}, "cluster", "status")
}

func TestChronikctlTransferLeader(t *testing.T) {
	c, _, _ := threeNodes(t)
	a1 := addrOf(c, 1)
	out := wantCtl(t, a1, 0, []string{"GROUP", "orders/0"}, "transfer-leader", "--topic", "orders", "--partition", "0", "--to", "2")
	if !strings.Contains(strings.Join(strings.Fields(out), " "), "orders/0 1 2 2") {
		t.Errorf("output %q lacks the change row", out)
	}
	if p := c.store.State().Partition("orders", 0); p.Leader != 2 {
		t.Errorf("orders/0 led by %d", p.Leader)
	}
	wantCtl(t, a1, 0, []string{"__meta"}, "transfer-leader", "--meta", "--to", "3")
	wantCtl(t, a1, 0, []string{"No leadership changed"}, "transfer-leader", "--meta", "--to", "3")
	wantCtl(t, a1, 1, []string{"unknown node 7"}, "transfer-leader", "--topic", "orders", "--partition", "1", "--to", "7")
	wantCtl(t, a1, 1, []string{"node 1 is not a replica of payments/1"}, "transfer-leader", "--topic", "payments", "--partition", "1", "--to", "1")
	wantCtl(t, a1, 1, []string{"unknown topic orderz"}, "transfer-leader", "--topic", "orderz", "--partition", "1")
	wantCtl(t, a1, 0, []string{"__consumer_offsets/0"}, "transfer-leader", "--node", "1")
	if leaders, _ := leaderCounts(c.store.State()); leaders[1] != 0 {
		t.Errorf("node 1 still leads %d partitions", leaders[1])
	}
}

func TestChronikctlRebalanceDrainDecommission(t *testing.T) {
	c, _, _ := fourthNode(t)
	a1 := addrOf(c, 1)
	wantCtl(t, a1, 0, []string{"Rebalance plan (dry run, not started): 8 moves", "STEP"}, "rebalance", "--dry-run")
	if c.count("add") != 0 {
		t.Fatal("the dry run moved replicas")
	}
	wantCtl(t, a1, 0, []string{"started: 8 moves", "done, 8/8 steps"}, "rebalance", "--wait", "--interval", "20ms")
	wantCtl(t, a1, 0, []string{"State:", "done", "8/8 steps"}, "rebalance", "status")
	wantCtl(t, a1, 0, []string{"Nothing to move"}, "rebalance", "--dry-run")

	wantCtl(t, a1, 0, []string{"Node 2 is drained and leads 0 partitions."}, "node", "drain", "2")
	wantCtl(t, a1, 0, []string{"started:", "REMOVE", "done, "}, "node", "decommission", "4", "--wait", "--interval", "20ms")
	if c.store.State().Brokers[4] != nil {
		t.Error("node 4 is still registered")
	}
	c.assertInvariants(t)
	wantCtl(t, a1, 1, []string{"cannot decommission node 3", "only 2 other live brokers"}, "node", "decommission", "3")
	wantCtl(t, a1, 0, []string{"NODE", "drained"}, "node", "list")
}
