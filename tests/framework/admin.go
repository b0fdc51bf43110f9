package framework

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// ChronikctlBin is the chronikctl binary: $CHRONIKCTL_BIN, or built once
// from the workspace into a temporary directory.
func ChronikctlBin(t testing.TB) string { return ctlBin.path(t) }

var ctlBin = &workspaceBin{env: "CHRONIKCTL_BIN", pkg: "./chronikctl", name: "chronikctl"}

// CtlResult is what one chronikctl run printed and how it exited.
type CtlResult struct {
	Stdout, Stderr string
	Exit           int
}

// Chronikctl runs chronikctl against the admin API at server (host:port of
// a Kafka port) and returns its output and exit code. It fails the test
// only when the binary cannot run or does not finish in time: a minute, or
// 30 s more than a --timeout among args.
func Chronikctl(t testing.TB, server string, args ...string) CtlResult {
	t.Helper()
	res := ChronikctlQuiet(t, server, args...)
	t.Logf("chronikctl %s: exit %d\n%s%s", strings.Join(args, " "), res.Exit, res.Stdout, res.Stderr)
	return res
}

// ChronikctlQuiet is Chronikctl without logging the output, for polls.
func ChronikctlQuiet(t testing.TB, server string, args ...string) CtlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ctlDeadline(args))
	defer cancel()
	cmd := exec.CommandContext(ctx, ChronikctlBin(t), append([]string{"--server", server}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	res := CtlResult{Stdout: out.String(), Stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil:
		res.Exit = ee.ExitCode()
	default:
		t.Fatalf("chronikctl %s: %v\n%s%s", strings.Join(args, " "), err, res.Stdout, res.Stderr)
	}
	return res
}

// ctlDeadline is how long a chronikctl run with args may take: a command
// told to wait longer than a minute (--timeout) gets that and 30 s more.
func ctlDeadline(args []string) time.Duration {
	for i, a := range args {
		v, ok := strings.CutPrefix(a, "--timeout=")
		if !ok && a == "--timeout" && i+1 < len(args) {
			v, ok = args[i+1], true
		}
		if d, err := time.ParseDuration(v); ok && err == nil {
			return max(time.Minute, d+30*time.Second)
		}
	}
	return time.Minute
}

// ClusterStatus is the part of `chronikctl cluster status --json` that
// tests read.
type ClusterStatus struct {
	Healthy  bool     `json:"healthy"`
	Problems []string `json:"problems"`
	Status   struct {
		Nodes []struct {
			NodeID       int32  `json:"node_id"`
			Alive        bool   `json:"alive"`
			IsMetaLeader bool   `json:"is_meta_leader"`
			State        string `json:"state"`
			LeaderCount  int32  `json:"leader_count"`
			ReplicaCount int32  `json:"replica_count"`
		} `json:"nodes"`
		Meta struct {
			LeaderID    int32 `json:"leader_id"`
			ClusterSize int32 `json:"cluster_size"`
			VotersAlive int32 `json:"voters_alive"`
		} `json:"meta"`
		Topics []struct {
			Topic      string `json:"topic"`
			Partitions []struct {
				Partition int32   `json:"partition"`
				LeaderID  int32   `json:"leader_id"`
				Replicas  []int32 `json:"replicas"`
				ISR       []int32 `json:"isr"`
			} `json:"partitions"`
		} `json:"topics"`
	} `json:"status"`
}

// Status runs `chronikctl cluster status --json` against server; exit is
// chronikctl's exit code and st is nil when it printed no status.
func Status(t testing.TB, server string) (st *ClusterStatus, exit int) {
	t.Helper()
	res := ChronikctlQuiet(t, server, "--json", "cluster", "status", "--partitions")
	if res.Exit == 2 || strings.TrimSpace(res.Stdout) == "" {
		return nil, res.Exit
	}
	st = &ClusterStatus{}
	if err := json.Unmarshal([]byte(res.Stdout), st); err != nil {
		t.Fatalf("decode cluster status: %v\n%s", err, res.Stdout)
	}
	return st, res.Exit
}

// PartitionLeader returns the leader of topic/partition in st, or 0.
func (st *ClusterStatus) PartitionLeader(topic string, partition int32) (leader int32, replicas []int32) {
	for _, tp := range st.Status.Topics {
		if tp.Topic != topic {
			continue
		}
		for _, p := range tp.Partitions {
			if p.Partition == partition {
				return p.LeaderID, p.Replicas
			}
		}
	}
	return 0, nil
}

// NodeIDs lists the nodes st reports.
func (st *ClusterStatus) NodeIDs() []int32 {
	var ids []int32
	for _, n := range st.Status.Nodes {
		ids = append(ids, n.NodeID)
	}
	return ids
}

// AdminPost sends a POST with a JSON body (may be empty) to the admin REST
// path on server and returns the status code and body.
func AdminPost(t testing.TB, server, path, body string) (int, string) {
	t.Helper()
	cl := http.Client{Timeout: 30 * time.Second}
	resp, err := cl.Post("http://"+server+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s on %s: %v", path, server, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	t.Logf("POST %s %s on %s: %d %s", path, body, server, resp.StatusCode, b)
	return resp.StatusCode, string(b)
}

// EventuallyEvery polls cond every interval until it is true or the
// timeout passes, for conditions that are costly to check (a process per
// check).
func EventuallyEvery(t testing.TB, timeout, every time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}
