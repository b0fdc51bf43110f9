//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-stream/chronik/tests/framework"
)

// admOptions is the guide's three-node cluster with a faster ISR check
// (and broker heartbeat), so that liveness and ISR changes show within a
// second.
func admOptions() framework.ClusterOptions {
	return framework.ClusterOptions{Extra: "\n[isr]\ncheck_interval_ms = 300\n"}
}

// admHealthy waits until `chronikctl cluster status` against server exits
// 0 and returns the status it printed.
func admHealthy(t *testing.T, server string, within time.Duration) *framework.ClusterStatus {
	t.Helper()
	var st *framework.ClusterStatus
	framework.EventuallyEvery(t, within, 250*time.Millisecond, "a healthy cluster status from "+server, func() bool {
		var exit int
		st, exit = framework.Status(t, server)
		return exit == 0
	})
	return st
}

func admStatus(t *testing.T, server string) *framework.ClusterStatus {
	t.Helper()
	st, exit := framework.Status(t, server)
	if st == nil {
		t.Fatalf("cluster status from %s: exit %d and no status", server, exit)
	}
	return st
}

func admNode(st *framework.ClusterStatus, id int32) (leaders int32, metaLeader, ok bool) {
	for _, n := range st.Status.Nodes {
		if n.NodeID == id {
			return n.LeaderCount, n.IsMetaLeader, true
		}
	}
	return 0, false, false
}

func admState(st *framework.ClusterStatus, id int32) string {
	for _, n := range st.Status.Nodes {
		if n.NodeID == id {
			return n.State
		}
	}
	return ""
}

func admCreate(t *testing.T, ctx context.Context, addr, topic string, partitions int32, rf int16) {
	t.Helper()
	adm := kadm.NewClient(client(t, addr))
	resp, err := adm.CreateTopic(ctx, partitions, rf, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
}

// admElected waits until every partition of topic has a Raft leader that
// the nodes agree on.
func admElected(t *testing.T, c *framework.Cluster, topic string, partitions int) {
	t.Helper()
	for p := range partitions {
		framework.Eventually(t, 30*time.Second, fmt.Sprintf("a leader of %s/%d", topic, p), func() bool {
			return c.RaftLeader(topic, p) != 0
		})
	}
}

func TestAdminStatusAndTransfers(t *testing.T) {
	c := framework.StartCluster(t, admOptions())
	ctx := ctxT(t, 2*time.Minute)
	addr := func(id int32) string { return c.Node(int(id)).Addr() }

	st := admHealthy(t, addr(1), 30*time.Second)
	if got := st.NodeIDs(); !slices.Equal(got, []int32{1, 2, 3}) || st.Status.Meta.ClusterSize != 3 {
		t.Fatalf("nodes %v, __meta voters %d", got, st.Status.Meta.ClusterSize)
	}
	res := framework.Chronikctl(t, "127.0.0.1:"+strconv.Itoa(framework.FreePort(t, "127.0.0.1")), "--timeout", "2s", "cluster", "status")
	if res.Exit != 2 {
		t.Fatalf("status of an unreachable server exited %d, want 2", res.Exit)
	}

	admCreate(t, ctx, addr(1), "adm", 3, 3)
	admCreate(t, ctx, addr(1), "adm-two", 1, 2)
	admElected(t, c, "adm", 3)
	admElected(t, c, "adm-two", 1)
	st = admHealthy(t, addr(2), 30*time.Second)

	// One partition to a named node, asked of a node that need not lead it.
	leader, replicas := st.PartitionLeader("adm", 0)
	to := replicas[0]
	if to == leader {
		to = replicas[1]
	}
	res = framework.Chronikctl(t, addr(6-leader-to), "transfer-leader", "--topic", "adm", "--partition", "0", "--to", fmt.Sprint(to))
	if res.Exit != 0 {
		t.Fatalf("transfer adm/0 to %d: exit %d", to, res.Exit)
	}
	if got, _ := admStatus(t, addr(1)).PartitionLeader("adm", 0); got != to {
		t.Fatalf("status shows adm/0 led by %d after the transfer to %d", got, to)
	}
	framework.Eventually(t, 10*time.Second, "raft_leader of adm/0 to show the new leader", func() bool {
		return c.RaftLeader("adm", 0) == int(to)
	})

	// __meta to a named node, asked of another.
	metaLeader := st.Status.Meta.LeaderID
	metaTo := metaLeader%3 + 1
	res = framework.Chronikctl(t, addr(metaTo%3+1), "transfer-leader", "--meta", "--to", fmt.Sprint(metaTo))
	if res.Exit != 0 {
		t.Fatalf("transfer __meta to %d: exit %d", metaTo, res.Exit)
	}
	if got := admStatus(t, addr(1)).Status.Meta.LeaderID; got != metaTo {
		t.Fatalf("status shows __meta led by %d after the transfer to %d", got, metaTo)
	}
	framework.Eventually(t, 10*time.Second, "raft_leader of __meta to show the new leader", func() bool {
		return c.RaftLeader("__meta", 0) == int(metaTo)
	})

	// Bad requests: clear errors, nothing moves.
	two, twoReplicas := st.PartitionLeader("adm-two", 0)
	outsider := 6 - twoReplicas[0] - twoReplicas[1]
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"transfer-leader", "--topic", "adm", "--partition", "0", "--to", "9"}, "unknown node 9"},
		{[]string{"transfer-leader", "--topic", "nope", "--partition", "0"}, "unknown topic nope"},
		{[]string{"transfer-leader", "--topic", "adm", "--partition", "7"}, "unknown partition adm/7"},
		{[]string{"transfer-leader", "--topic", "adm-two", "--partition", "0", "--to", fmt.Sprint(outsider)},
			fmt.Sprintf("node %d is not a replica of adm-two/0", outsider)},
		{[]string{"transfer-leader", "--meta", "--to", "9"}, "unknown node 9"},
		{[]string{"node", "decommission", "9"}, "unknown node 9"},
	} {
		res := framework.Chronikctl(t, addr(1), bad.args...)
		if res.Exit != 1 || !strings.Contains(res.Stderr, bad.want) {
			t.Errorf("chronikctl %v: exit %d, stderr %q; want exit 1 and %q", bad.args, res.Exit, res.Stderr, bad.want)
		}
	}
	code, body := framework.AdminPost(t, addr(2), "/admin/transfer-leader", `{"topic":"adm","partition":0,"to":9}`)
	if code != http.StatusNotFound || !strings.Contains(body, "unknown node 9") {
		t.Errorf("REST transfer to node 9: %d %s", code, body)
	}
	code, body = framework.AdminPost(t, addr(2), "/admin/transfer-leader", `{"topic":"adm"}`)
	if code != http.StatusBadRequest || !strings.Contains(body, "topic and partition go together") {
		t.Errorf("REST transfer without a partition: %d %s", code, body)
	}
	st = admStatus(t, addr(3))
	if got, _ := st.PartitionLeader("adm", 0); got != to || st.Status.Meta.LeaderID != metaTo {
		t.Fatalf("refused requests moved leaders: adm/0 %d (want %d), __meta %d (want %d)", got, to, st.Status.Meta.LeaderID, metaTo)
	}
	if got, _ := st.PartitionLeader("adm-two", 0); got != two {
		t.Fatalf("adm-two/0 moved from %d to %d", two, got)
	}

	// The guide's rolling-restart call: everything the node leads moves.
	if leaders, _, _ := admNode(st, metaTo); leaders == 0 {
		res = framework.Chronikctl(t, addr(1), "transfer-leader", "--topic", "adm", "--partition", "1", "--to", fmt.Sprint(metaTo))
		if res.Exit != 0 {
			t.Fatalf("give node %d a partition: exit %d", metaTo, res.Exit)
		}
	}
	code, body = framework.AdminPost(t, addr(metaTo), "/admin/transfer-leader", "")
	if code != http.StatusOK {
		t.Fatalf("POST /admin/transfer-leader on node %d: %d %s", metaTo, code, body)
	}
	var ans struct {
		NodeID  int32 `json:"node_id"`
		Changes []struct {
			Topic     string `json:"topic"`
			NewLeader int32  `json:"new_leader"`
		} `json:"changes"`
	}
	if err := json.Unmarshal([]byte(body), &ans); err != nil || ans.NodeID != metaTo || len(ans.Changes) < 2 || ans.Changes[0].Topic != "__meta" {
		t.Fatalf("answer %s (%v)", body, err)
	}
	st = admStatus(t, addr(1))
	if leaders, isMeta, _ := admNode(st, metaTo); leaders != 0 || isMeta {
		t.Fatalf("node %d still leads %d partitions (meta %v) after giving them away", metaTo, leaders, isMeta)
	}
	framework.Eventually(t, 10*time.Second, "raft_leader of __meta to move off node "+fmt.Sprint(metaTo), func() bool {
		l := c.RaftLeader("__meta", 0)
		return l != 0 && l != int(metaTo)
	})

	// The documented rolling restart of one node: drain it, restart it,
	// and it is healthy and active again (it clears its drain mark).
	d := to
	if d == metaTo {
		d = metaTo%3 + 1
	}
	res = framework.Chronikctl(t, addr(1), "node", "drain", fmt.Sprint(d))
	if res.Exit != 0 {
		t.Fatalf("drain node %d: exit %d", d, res.Exit)
	}
	st = admStatus(t, addr(1))
	if leaders, isMeta, _ := admNode(st, d); leaders != 0 || isMeta || admState(st, d) != "NODE_STATE_DRAINED" {
		t.Fatalf("drained node %d leads %d partitions (meta %v), state %s", d, leaders, isMeta, admState(st, d))
	}
	// An election can still pick a drained node: kill the leader of adm/0,
	// and every adm partition ends up led by the one node left that is not
	// draining (the drained node hands on whatever it wins).
	l, _ := st.PartitionLeader("adm", 0)
	third := 6 - d - l
	c.Node(int(l)).Kill()
	framework.Eventually(t, 20*time.Second, fmt.Sprintf("every adm partition led by node %d, not by the drained node %d", third, d), func() bool {
		for p := range 3 {
			if c.RaftLeader("adm", p) != int(third) {
				return false
			}
		}
		return true
	})
	c.Node(int(l)).Start()
	admHealthy(t, addr(third), 60*time.Second)
	c.Node(int(d)).Stop()
	c.Node(int(d)).Start()
	framework.EventuallyEvery(t, 30*time.Second, 250*time.Millisecond, fmt.Sprintf("node %d healthy and active again", d), func() bool {
		st, exit := framework.Status(t, addr(d))
		return exit == 0 && admState(st, d) == "NODE_STATE_ACTIVE"
	})

	// A dead node: degraded (exit 1), and says which.
	victim := metaTo
	c.Node(int(victim)).Kill()
	other := victim%3 + 1
	framework.EventuallyEvery(t, 20*time.Second, 250*time.Millisecond, "a degraded status naming the dead node", func() bool {
		st, exit := framework.Status(t, addr(other))
		return exit == 1 && st != nil && slices.Contains(st.Problems, fmt.Sprintf("node %d is down", victim))
	})
}

// admTraffic keeps an idempotent acks=-1 producer and a consumer running
// on a topic and records what was acknowledged and what was read.
type admTraffic struct {
	cancelProd, cancelCons context.CancelFunc
	wg                     sync.WaitGroup

	mu      sync.Mutex
	acked   map[string]bool
	seen    map[string]int
	nAcked  atomic.Int64
	lastErr atomic.Value
}

func startAdmTraffic(t *testing.T, addrs []string, topic string) *admTraffic {
	t.Helper()
	tr := &admTraffic{acked: map[string]bool{}, seen: map[string]int{}}
	pr := client(t, addrs[0], kgo.SeedBrokers(addrs...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2*time.Millisecond), kgo.RecordDeliveryTimeout(90*time.Second))
	cons := client(t, addrs[0], kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	pctx, cancelProd := context.WithCancel(context.Background())
	cctx, cancelCons := context.WithCancel(context.Background())
	tr.cancelProd, tr.cancelCons = cancelProd, cancelCons
	tr.wg.Add(2)
	go func() {
		defer tr.wg.Done()
		for i := 0; pctx.Err() == nil; i += 20 {
			recs := make([]*kgo.Record, 20)
			for j := range recs {
				recs[j] = &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf("v-%08d", i+j))}
			}
			for _, r := range pr.ProduceSync(pctx, recs...) {
				if r.Err != nil {
					tr.lastErr.Store(r.Err.Error())
					continue
				}
				tr.mu.Lock()
				tr.acked[string(r.Record.Value)] = true
				tr.mu.Unlock()
				tr.nAcked.Add(1)
			}
		}
	}()
	go func() {
		defer tr.wg.Done()
		for cctx.Err() == nil {
			fs := cons.PollFetches(cctx)
			tr.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { tr.seen[string(r.Value)]++ })
			tr.mu.Unlock()
		}
	}()
	t.Cleanup(tr.halt)
	return tr
}

func (tr *admTraffic) halt() {
	tr.cancelProd()
	tr.cancelCons()
	tr.wg.Wait()
}

// awaitAcked waits until n more records than now are acknowledged.
func (tr *admTraffic) awaitAcked(t *testing.T, n int64, what string) {
	t.Helper()
	want := tr.nAcked.Load() + n
	framework.Eventually(t, 60*time.Second, fmt.Sprintf("%d acknowledged records %s (last error %v)", n, what, tr.lastErr.Load()), func() bool {
		return tr.nAcked.Load() >= want
	})
}

// verify stops the producer, waits until the consumer has read every
// acknowledged record, stops it, and checks that each was read exactly
// once and nothing at all twice.
func (tr *admTraffic) verify(t *testing.T) {
	t.Helper()
	tr.cancelProd()
	framework.Eventually(t, 60*time.Second, "the consumer to read every acknowledged record", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for v := range tr.acked {
			if tr.seen[v] == 0 {
				return false
			}
		}
		return true
	})
	tr.halt()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for v, n := range tr.seen {
		if n != 1 {
			t.Errorf("record %s read %d times", v, n)
		}
	}
	t.Logf("%d records acknowledged, %d distinct read", len(tr.acked), len(tr.seen))
}

func TestAdminScaleOutAndDecommission(t *testing.T) {
	c := framework.StartCluster(t, admOptions())
	ctx := ctxT(t, 3*time.Minute)
	n1 := c.Node(1).Addr()
	admHealthy(t, n1, 30*time.Second)
	admCreate(t, ctx, n1, "scale", 4, 3)
	admElected(t, c, "scale", 4)
	admHealthy(t, n1, 30*time.Second)
	tr := startAdmTraffic(t, c.Addrs(), "scale")
	tr.awaitAcked(t, 200, "before adding a node")

	// The guide's "Adding a 4th Node": cluster.toml everywhere, a rolling
	// restart of the others, then the new node.
	n4 := c.AddNode()
	for id := 1; id <= 3; id++ {
		c.Node(id).Stop()
		c.Node(id).Start()
		admHealthy(t, c.Node(id%3+1).Addr(), 60*time.Second)
	}
	n4.Start()
	framework.Eventually(t, 30*time.Second, "cluster_size 4 on node 4", func() bool {
		return n4.Metrics()["cluster_size"] == 4
	})
	st := admHealthy(t, n4.Addr(), 30*time.Second)
	if got := st.NodeIDs(); !slices.Equal(got, []int32{1, 2, 3, 4}) || st.Status.Meta.ClusterSize != 4 {
		t.Fatalf("nodes %v, __meta voters %d after adding node 4", got, st.Status.Meta.ClusterSize)
	}
	tr.awaitAcked(t, 200, "after the rolling restart")

	// Rebalance onto it while traffic runs; a second rebalance is refused
	// while the first runs.
	done := make(chan framework.CtlResult, 1)
	rebalanceStart := time.Now()
	go func() {
		// Chronikctl fails the test from this goroutine if chronikctl
		// cannot run; the deferred send still lets the test go on to end.
		res := framework.CtlResult{Exit: -1}
		defer func() { done <- res }()
		res = framework.Chronikctl(t, n1, "--timeout", "150s", "rebalance", "--wait", "--interval", "200ms")
	}()
	framework.EventuallyEvery(t, 30*time.Second, 100*time.Millisecond, "the rebalance to run", func() bool {
		res := framework.ChronikctlQuiet(t, c.Node(2).Addr(), "--json", "rebalance", "status")
		return strings.Contains(res.Stdout, "REBALANCE_STATE_RUNNING")
	})
	code, body := framework.AdminPost(t, c.Node(3).Addr(), "/admin/rebalance", "")
	if code != http.StatusConflict || !strings.Contains(body, "already running") {
		t.Errorf("second rebalance: %d %s", code, body)
	}
	if res := <-done; res.Exit != 0 {
		t.Fatalf("rebalance --wait: exit %d after %v", res.Exit, time.Since(rebalanceStart).Round(time.Millisecond))
	}
	t.Logf("rebalance done in %v", time.Since(rebalanceStart).Round(time.Millisecond))
	st = admHealthy(t, n1, 60*time.Second)
	for _, n := range st.Status.Nodes {
		if n.NodeID == 4 && (n.ReplicaCount == 0 || n.LeaderCount == 0) {
			t.Fatalf("node 4 hosts %d replicas and leads %d after the rebalance", n.ReplicaCount, n.LeaderCount)
		}
	}
	tr.awaitAcked(t, 200, "after the rebalance")

	// Decommission node 2: its replicas move away, it leaves __meta, and
	// the cluster is healthy without it, before and after it stops.
	res := framework.Chronikctl(t, n1, "--timeout", "150s", "node", "decommission", "2", "--wait", "--interval", "200ms")
	if res.Exit != 0 {
		t.Fatalf("decommission node 2: exit %d", res.Exit)
	}
	check := func(st *framework.ClusterStatus) {
		t.Helper()
		if got := st.NodeIDs(); !slices.Equal(got, []int32{1, 3, 4}) || st.Status.Meta.ClusterSize != 3 {
			t.Fatalf("nodes %v, __meta voters %d after decommissioning node 2", got, st.Status.Meta.ClusterSize)
		}
		for _, tp := range st.Status.Topics {
			for _, p := range tp.Partitions {
				if slices.Contains(p.Replicas, 2) || p.LeaderID == 2 {
					t.Fatalf("%s/%d still on node 2: replicas %v leader %d", tp.Topic, p.Partition, p.Replicas, p.LeaderID)
				}
			}
		}
	}
	check(admHealthy(t, c.Node(3).Addr(), 30*time.Second))
	c.Node(2).Stop()
	tr.awaitAcked(t, 200, "after the decommission")
	check(admHealthy(t, n4.Addr(), 30*time.Second))
	tr.verify(t)
}

// TestAdminSingleNode: a node without a cluster configuration serves the
// status, and refuses moves with FailedPrecondition (409 over REST).
func TestAdminSingleNode(t *testing.T) {
	srv := framework.StartStandalone(t)
	st := admHealthy(t, srv.Addr(), 30*time.Second)
	if got := st.NodeIDs(); !slices.Equal(got, []int32{1}) || st.Status.Meta.LeaderID != 1 {
		t.Fatalf("nodes %v, __meta leader %d", got, st.Status.Meta.LeaderID)
	}
	res := framework.Chronikctl(t, srv.Addr(), "transfer-leader", "--meta", "--to", "0")
	if res.Exit != 1 || !strings.Contains(res.Stderr, "no other live __meta voter") {
		t.Errorf("transfer __meta on a single node: exit %d %q", res.Exit, res.Stderr)
	}
	code, body := framework.AdminPost(t, srv.Addr(), "/admin/transfer-leader", "")
	if code != http.StatusConflict {
		t.Errorf("REST transfer on a single node: %d %s", code, body)
	}
	code, body = framework.AdminPost(t, srv.Addr(), "/admin/rebalance", `{"dry_run":true}`)
	if code != http.StatusOK || !strings.Contains(body, `"moves": []`) {
		t.Errorf("REST rebalance dry run on a single node: %d %s", code, body)
	}
}
