//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/tests/framework"
)

// ledger records what a producer had acknowledged: per partition, the
// sequence numbers of its records.
type ledger struct {
	mu      sync.Mutex
	acked   map[int32]map[int]bool
	n       atomic.Int64
	failed  atomic.Int64
	lastErr atomic.Value
}

func (l *ledger) ack(p int32, seq int) {
	l.mu.Lock()
	if l.acked[p] == nil {
		l.acked[p] = map[int]bool{}
	}
	l.acked[p][seq] = true
	l.mu.Unlock()
	l.n.Add(1)
}

// tWriter sends a client's log lines to the test log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// seqValue is a record value: its partition and its sequence in it.
func seqValue(p int32, seq int) string { return fmt.Sprintf("%d-%07d", p, seq) }

// producer writes sequence-numbered records round-robin to a topic's
// partitions with acks=-1 and idempotence until stopped or max records.
type producer struct {
	cl     *kgo.Client
	l      *ledger
	cancel context.CancelFunc
	done   chan struct{}
}

func startProducer(t *testing.T, addrs []string, topic string, partitions, max int, opts ...kgo.Opt) *producer {
	t.Helper()
	base := []kgo.Opt{kgo.SeedBrokers(addrs...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(90 * time.Second),
		kgo.MaxBufferedRecords(256),
		kgo.RetryTimeout(60 * time.Second),
		kgo.MetadataMinAge(250 * time.Millisecond),
		kgo.WithLogger(kgo.BasicLogger(tWriter{t}, kgo.LogLevelWarn, nil)),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithCancel(context.Background())
	pr := &producer{cl: cl, l: &ledger{acked: map[int32]map[int]bool{}}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(pr.done)
		for i := 0; i < max && ctx.Err() == nil; i++ {
			p, seq := int32(i%partitions), i/partitions
			rec := &kgo.Record{Topic: topic, Partition: p, Value: []byte(seqValue(p, seq))}
			// Not ctx: stopping ends the loop, never a record in flight.
			cl.Produce(context.Background(), rec, func(r *kgo.Record, err error) {
				if err != nil {
					pr.l.failed.Add(1)
					pr.l.lastErr.Store(fmt.Sprint(err))
					return
				}
				pr.l.ack(p, seq)
			})
		}
	}()
	t.Cleanup(func() { pr.cancel(); <-pr.done })
	return pr
}

// awaitProgress waits until n more records than now are acknowledged and
// returns how long that took.
func (pr *producer) awaitProgress(t *testing.T, n int64, timeout time.Duration, what string) time.Duration {
	t.Helper()
	start, from := time.Now(), pr.l.n.Load()
	framework.Eventually(t, timeout, what, func() bool { return pr.l.n.Load() >= from+n })
	return time.Since(start)
}

// stop stops producing new records and waits for the buffered ones.
func (pr *producer) stop(t *testing.T) {
	t.Helper()
	pr.cancel()
	<-pr.done
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := pr.cl.Flush(ctx); err != nil {
		t.Fatalf("flush producer: %v", err)
	}
}

// verifyLog reads every partition of topic from the start through addrs
// and checks that each acknowledged record is there exactly once and that
// every partition holds its records in sequence order.
func verifyLog(t *testing.T, addrs []string, topic string, partitions int, l *ledger) {
	t.Helper()
	ctx := ctxT(t, 90*time.Second)
	adm := kadm.NewClient(client(t, addrs[0], kgo.SeedBrokers(addrs...)))
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { want[o.Partition] = o.Offset })
	cl := client(t, addrs[0], kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	last := map[int32]int{}
	seen := map[int32]map[int]bool{}
	next := map[int32]int64{}
	for p := range want {
		last[p] = -1
		seen[p] = map[int]bool{}
	}
	done := func() bool {
		for p, end := range want {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read back %v of %v: %v", next, want, ctx.Err())
		}
		fs.EachError(func(tp string, p int32, err error) { t.Logf("fetch %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			var p int32
			var seq int
			if _, err := fmt.Sscanf(string(r.Value), "%d-%d", &p, &seq); err != nil || p != r.Partition {
				t.Fatalf("record %q at %d/%d does not belong there", r.Value, r.Partition, r.Offset)
			}
			if seq <= last[p] {
				t.Fatalf("partition %d: record %d at offset %d after record %d: duplicate or out of order", p, seq, r.Offset, last[p])
			}
			last[p] = seq
			seen[p][seq] = true
			next[p] = r.Offset + 1
		})
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	missing := 0
	for p, seqs := range l.acked {
		for seq := range seqs {
			if !seen[p][seq] {
				missing++
				if missing < 10 {
					t.Errorf("acknowledged record %s is missing", seqValue(p, seq))
				}
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d acknowledged records missing", missing)
	}
	t.Logf("read back %d acknowledged records of %s, each once, in order (%d produces failed, last: %v)", l.n.Load(), topic, l.failed.Load(), l.lastErr.Load())
}

// createTopic creates topic with rf 3 and waits until every partition has
// a leader that all running nodes agree on.
func createTopic(t *testing.T, c *framework.Cluster, topic string, partitions int) {
	t.Helper()
	cl := client(t, c.Addrs()[0], kgo.SeedBrokers(c.Addrs()...))
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopic(ctxT(t, 30*time.Second), int32(partitions), 3, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	awaitElectedEpochs(t, cl, topic, partitions)
	for p := 0; p < partitions; p++ {
		framework.Eventually(t, 20*time.Second, fmt.Sprintf("leader of %s/%d", topic, p), func() bool {
			return c.RaftLeader(topic, p) != 0
		})
	}
}

// awaitElectedEpochs reads topic's metadata until every partition has a
// leader epoch from an election (1 or more). Before its first election is
// reported a partition must be answered with epoch -1 (unknown), never 0:
// a client that pinned 0 would be fenced by the elected leader and stall
// until its next metadata refresh.
func awaitElectedEpochs(t *testing.T, cl *kgo.Client, topic string, partitions int) {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	framework.Eventually(t, 20*time.Second, fmt.Sprintf("elected leader epochs of %s", topic), func() bool {
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != partitions {
			return false
		}
		elected := 0
		for _, p := range resp.Topics[0].Partitions {
			switch {
			case p.LeaderEpoch == 0:
				t.Fatalf("%s/%d answered with leader epoch 0 (leader %d); want -1 until elected", topic, p.Partition, p.Leader)
			case p.LeaderEpoch > 0:
				elected++
			}
		}
		return elected == partitions
	})
}

// awaitInSync waits until every partition of topic reports its full
// replica set in sync on its leader.
func awaitInSync(t *testing.T, c *framework.Cluster, topic string, partitions, replicas int) {
	t.Helper()
	for p := 0; p < partitions; p++ {
		key := fmt.Sprintf("partition_isr_size{topic=%q,partition=\"%d\"}", topic, p)
		framework.Eventually(t, 60*time.Second, fmt.Sprintf("%s/%d back in sync", topic, p), func() bool {
			l := c.RaftLeader(topic, p)
			return l != 0 && c.Node(l).Metrics()[key] == float64(replicas)
		})
	}
}

// awaitSameLogs waits until every node's copy of each partition of topic
// holds the same bytes: replicas end byte-identical.
func awaitSameLogs(t *testing.T, c *framework.Cluster, topic string, partitions int) {
	t.Helper()
	for p := 0; p < partitions; p++ {
		dir := fmt.Sprintf("%s-%d", topic, p)
		deadline := time.Now().Add(30 * time.Second)
		var diff string
		for {
			logs := make([][]byte, len(c.Nodes))
			for i, n := range c.Nodes {
				logs[i] = readLog(t, filepath.Join(n.DataDir, "topics", dir))
			}
			prev := diff
			diff = logsDiffer(logs)
			if diff == "" && len(logs[0]) > 0 {
				if prev != "" {
					t.Logf("%s/%d converged (earlier: %s)", topic, p, prev)
				}
				break
			}
			if time.Now().After(deadline) {
				var applied []string
				for i, n := range c.Nodes {
					m := n.Metrics()
					applied = append(applied, fmt.Sprintf("node %d last %v applied %v commit %v", i+1,
						m[fmt.Sprintf("raft_last_log_index{topic=%q,partition=\"%d\"}", topic, p)],
						m[fmt.Sprintf("raft_applied_index{topic=%q,partition=\"%d\"}", topic, p)],
						m[fmt.Sprintf("raft_commit_index{topic=%q,partition=\"%d\"}", topic, p)]))
				}
				t.Fatalf("replicas of %s/%d still differ after 30s: %s; %s", topic, p, diff, strings.Join(applied, ", "))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// logsDiffer describes how the other replicas' logs differ from the first
// one's, or returns "" when all are the same.
func logsDiffer(logs [][]byte) string {
	var out []string
	for i := 1; i < len(logs); i++ {
		a, b := logs[0], logs[i]
		if bytes.Equal(a, b) {
			continue
		}
		at := 0
		for at < len(a) && at < len(b) && a[at] == b[at] {
			at++
		}
		out = append(out, fmt.Sprintf("node 1 has %d bytes, node %d %d, first difference at byte %d (node 1: %s; node %d: %s)",
			len(a), i+1, len(b), at, batchAt(a, at), i+1, batchAt(b, at)))
	}
	return strings.Join(out, "; ")
}

// batchAt describes the record batch of log that holds byte at.
func batchAt(log []byte, at int) string {
	for pos := 0; pos+61 <= len(log); {
		size := 12 + int(binary.BigEndian.Uint32(log[pos+8:]))
		if at < pos+size || size <= 12 {
			return fmt.Sprintf("batch at byte %d: base offset %d, %d bytes, leader epoch %d, %d records",
				pos, int64(binary.BigEndian.Uint64(log[pos:])), size,
				int32(binary.BigEndian.Uint32(log[pos+12:])), int32(binary.BigEndian.Uint32(log[pos+57:])))
		}
		pos += size
	}
	return "past the last whole batch"
}

// readLog concatenates a partition directory's segment files.
func readLog(t *testing.T, dir string) []byte {
	names, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	sort.Strings(names)
	var out []byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil
		}
		out = append(out, b...)
	}
	return out
}

// TestClusterKillNineLosesNothingAcknowledged is the guide's "Test Fault
// Tolerance": kill -9 the __meta leader, then a partition leader, while an
// idempotent acks=-1 producer writes; restart each; every acknowledged
// record is read back exactly once, in order, and the replicas end
// byte-identical.
func TestClusterKillNineLosesNothingAcknowledged(t *testing.T) {
	c := framework.StartCluster(t, framework.ClusterOptions{})
	const topic, parts = "orders", 3
	createTopic(t, c, topic, parts)
	pr := startProducer(t, c.Addrs(), topic, parts, 1_000_000)
	pr.awaitProgress(t, 300, 60*time.Second, "first acknowledged records")

	kill := func(victim int, what string) {
		t.Helper()
		t.Logf("kill -9 node %d (%s)", victim, what)
		start := time.Now()
		c.Node(victim).Kill()
		for p := 0; p < parts; p++ {
			framework.Eventually(t, 30*time.Second, fmt.Sprintf("a live leader of %s/%d", topic, p), func() bool {
				l := c.RaftLeader(topic, p)
				return l != 0 && l != victim
			})
		}
		t.Logf("every partition has a live leader %v after the kill", time.Since(start).Round(time.Millisecond))
		took := pr.awaitProgress(t, 200, 60*time.Second, "produce after kill -9 of node "+fmt.Sprint(victim))
		framework.Eventually(t, 30*time.Second, "a new __meta leader", func() bool {
			l := c.RaftLeader("__meta", 0)
			return l != 0 && l != victim
		})
		t.Logf("node %d killed: 200 more records acknowledged after %v; __meta leader %d after %v",
			victim, took.Round(time.Millisecond), c.RaftLeader("__meta", 0), time.Since(start).Round(time.Millisecond))
		c.Node(victim).Start()
		pr.awaitProgress(t, 200, 60*time.Second, "produce after restart of node "+fmt.Sprint(victim))
		awaitInSync(t, c, topic, parts, 3)
	}

	var metaLeader int
	framework.Eventually(t, 20*time.Second, "__meta leader", func() bool {
		metaLeader = c.RaftLeader("__meta", 0)
		return metaLeader != 0
	})
	kill(metaLeader, "__meta leader")
	var partLeader int
	framework.Eventually(t, 20*time.Second, "leader of orders/0", func() bool {
		partLeader = c.RaftLeader(topic, 0)
		return partLeader != 0
	})
	kill(partLeader, "leader of orders/0")

	pr.stop(t)
	verifyLog(t, []string{c.Node(1 + partLeader%3).Addr()}, topic, parts, pr.l)
	awaitSameLogs(t, c, topic, parts)
}

// TestClusterLaggingReplicaTakesOver: a replica restarted after missing
// a few thousand entries is still counted in sync (isr.max_lag_entries is
// 10000), so when the leader dies right after the restart, the new leader
// can commit nothing until that replica has caught up. The catch-up must
// be quick, and nothing acknowledged may be lost.
func TestClusterLaggingReplicaTakesOver(t *testing.T) {
	c := framework.StartCluster(t, framework.ClusterOptions{})
	const topic = "lagging"
	createTopic(t, c, topic, 1)
	var leader int
	framework.Eventually(t, 20*time.Second, "leader of lagging/0", func() bool {
		leader = c.RaftLeader(topic, 0)
		return leader != 0
	})
	behind := 1 + leader%3
	t.Logf("kill -9 node %d, a follower of %s/0 (leader %d)", behind, topic, leader)
	c.Node(behind).Kill()

	// One record per request, so one Raft entry per record: the most
	// entries to catch up for the records written.
	pr := startProducer(t, c.Addrs(), topic, 1, 1_000_000, kgo.MaxBufferedRecords(1))
	pr.awaitProgress(t, 2000, 60*time.Second, "records while a follower is down")
	c.Node(behind).Start()
	t.Logf("node %d restarted; kill -9 node %d, the leader", behind, leader)
	c.Node(leader).Kill()
	took := pr.awaitProgress(t, 200, 60*time.Second, "produce after kill -9 of the leader")
	t.Logf("200 more records acknowledged %v after the kill", took.Round(time.Millisecond))
	c.Node(leader).Start()

	pr.stop(t)
	verifyLog(t, c.Addrs(), topic, 1, pr.l)
	awaitSameLogs(t, c, topic, 1)
}

// TestClusterQuorumLoss: with two of three nodes gone no write is
// acknowledged; with one back, writes resume and nothing acknowledged
// before is lost.
func TestClusterQuorumLoss(t *testing.T) {
	c := framework.StartCluster(t, framework.ClusterOptions{})
	const topic = "quorum"
	createTopic(t, c, topic, 1)
	cl := client(t, c.Addrs()[0], kgo.SeedBrokers(c.Addrs()...), kgo.RequiredAcks(kgo.AllISRAcks()))
	ctx := ctxT(t, 3*time.Minute)
	for i := 0; i < 20; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(value(i))}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	survivor := c.RaftLeader(topic, 0)
	for _, n := range c.Nodes {
		if n != c.Node(survivor) {
			n.Kill()
		}
	}
	// Not idempotent, so that the write goes straight to the partition
	// without first asking the (also quorum-less) controllers for an id.
	short, err := kgo.NewClient(kgo.SeedBrokers(c.Node(survivor).Addr()), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.DisableIdempotentWrite(), kgo.RecordDeliveryTimeout(5*time.Second), kgo.RetryTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer short.Close()
	if err := short.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("no-quorum")}).FirstErr(); err == nil {
		t.Fatal("a write was acknowledged by one node of three")
	} else {
		t.Logf("write without quorum failed as it should: %v", err)
	}

	back := 1 + survivor%3
	c.Node(back).Launch()
	cl2 := client(t, c.Node(survivor).Addr(), kgo.SeedBrokers(c.Node(survivor).Addr(), c.Node(back).Addr()),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(90*time.Second))
	for i := 20; i < 40; i++ {
		if err := cl2.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(value(i))}).FirstErr(); err != nil {
			t.Fatalf("produce %d after a node came back: %v", i, err)
		}
	}
	got := map[string]int{}
	for _, r := range consumeAll(t, []string{c.Node(survivor).Addr(), c.Node(back).Addr()}, topic) {
		got[string(r.Value)]++
	}
	for i := 0; i < 40; i++ {
		if got[value(i)] != 1 {
			t.Fatalf("acknowledged record %s read %d times", value(i), got[value(i)])
		}
	}
}

// consumeAll reads a topic from the start up to its end offsets.
func consumeAll(t *testing.T, addrs []string, topic string) []*kgo.Record {
	t.Helper()
	ctx := ctxT(t, 60*time.Second)
	adm := kadm.NewClient(client(t, addrs[0], kgo.SeedBrokers(addrs...)))
	var ends kadm.ListedOffsets
	framework.Eventually(t, 30*time.Second, "end offsets of "+topic, func() bool {
		var err error
		ends, err = adm.ListEndOffsets(ctx, topic)
		return err == nil && ends.Error() == nil
	})
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	cl := client(t, addrs[0], kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []*kgo.Record
	for int64(len(out)) < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", len(out), total, topic)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// TestClusterRollingRestart stops each node in turn with SIGTERM while a
// producer writes: each node hands its leaderships over before it exits,
// so no produce fails and nothing is lost.
func TestClusterRollingRestart(t *testing.T) {
	c := framework.StartCluster(t, framework.ClusterOptions{})
	const topic, parts = "rolling", 3
	createTopic(t, c, topic, parts)
	pr := startProducer(t, c.Addrs(), topic, parts, 1_000_000)
	pr.awaitProgress(t, 200, 60*time.Second, "first acknowledged records")
	for id := 1; id <= 3; id++ {
		if code := c.Node(id).Stop(); code != 0 {
			t.Fatalf("node %d exited %d on SIGTERM", id, code)
		}
		if !strings.Contains(c.Node(id).Logs(), "leaderships handed off before shutdown") {
			t.Errorf("node %d did not report its hand-off", id)
		}
		pr.awaitProgress(t, 100, 60*time.Second, fmt.Sprintf("produce with node %d stopped", id))
		c.Node(id).Start()
		awaitInSync(t, c, topic, parts, 3)
	}
	pr.stop(t)
	if f := pr.l.failed.Load(); f > 0 {
		t.Errorf("%d produce requests failed during the rolling restart; last: %v", f, pr.l.lastErr.Load())
	}
	verifyLog(t, c.Addrs(), topic, parts, pr.l)
}

// TestClusterClients: kcat and confluent-kafka produce through one node
// and consume through another.
func TestClusterClients(t *testing.T) {
	needTool(t, "kcat", "-V")
	needTool(t, "/usr/bin/python3", "-c", "import confluent_kafka")
	c := framework.StartCluster(t, framework.ClusterOptions{})
	ctx := ctxT(t, 3*time.Minute)

	createTopic(t, c, "kcat-orders", 3)
	var lines []string
	for i := 0; i < 1000; i++ {
		lines = append(lines, fmt.Sprint(i+1))
	}
	run(t, ctx, strings.Join(lines, "\n")+"\n", "kcat", "-b", c.Node(1).Addr(), "-P", "-t", "kcat-orders", "-X", "acks=all")
	out := run(t, ctx, "", "kcat", "-b", c.Node(2).Addr(), "-C", "-t", "kcat-orders", "-o", "beginning", "-e", "-q")
	got := strings.Fields(out)
	sort.Slice(got, func(i, j int) bool { return len(got[i]) < len(got[j]) || len(got[i]) == len(got[j]) && got[i] < got[j] })
	if strings.Join(got, "\n") != strings.Join(lines, "\n") {
		t.Fatalf("kcat through node 2 read %d records, want the 1000 produced through node 1", len(got))
	}
	meta := run(t, ctx, "", "kcat", "-b", c.Node(3).Addr(), "-L", "-t", "kcat-orders")
	if !strings.Contains(meta, "3 brokers") || strings.Count(meta, "replicas: ") != 3 {
		t.Fatalf("kcat -L through node 3:\n%s", meta)
	}

	py := run(t, ctx, "", "/usr/bin/python3", "testdata/confluent_cluster.py", c.Node(2).Addr(), c.Node(3).Addr(), "py-orders")
	if !strings.Contains(py, "OK") {
		t.Fatalf("python client:\n%s", py)
	}
}

// TestClusterBootstrapWaitsForQuorum: a node alone answers health probes
// with 503 and serves metrics while it waits for its peers; once a second
// node comes up the pair elects a __meta leader, logs the guide's
// bootstrap lines and reports ready.
func TestClusterBootstrapWaitsForQuorum(t *testing.T) {
	c := framework.NewCluster(t, framework.ClusterOptions{})
	n1 := c.Node(1)
	n1.Launch()
	get := func(path string) (int, string) {
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + n1.Addr() + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	framework.Eventually(t, 20*time.Second, "node 1 answering /health/ready", func() bool {
		code, _ := get("/health/ready")
		return code == http.StatusServiceUnavailable
	})
	framework.Eventually(t, 20*time.Second, "a lone node's metrics to show a quorum of 1", func() bool {
		code, body := get("/metrics")
		return code == http.StatusOK && strings.Contains(body, "cluster_quorum_size 1")
	})
	if code, _ := get("/health/live"); code != http.StatusOK {
		t.Fatalf("/health/live of a lone node: %d", code)
	}
	if !strings.Contains(n1.Logs(), "Waiting for quorum (need 2/3 nodes)...") {
		t.Fatalf("node 1 does not say it waits for quorum:\n%s", n1.Logs())
	}

	c.Node(2).Launch()
	n1.WaitReady(60 * time.Second)
	c.Node(2).WaitReady(60 * time.Second)
	for _, want := range []string{"Creating ClusterCoordinator for node 1 with 2 peers", "Quorum achieved! 2/3 peers alive",
		"Bootstrap complete for node 1", "Chronik server ready on " + n1.Addr()} {
		if !strings.Contains(n1.Logs(), want) {
			t.Errorf("node 1 never logged %q", want)
		}
	}
	if code, _ := get("/health/ready"); code != http.StatusOK {
		t.Fatalf("/health/ready after bootstrap: %d", code)
	}
	// The third node joins a formed cluster.
	c.Node(3).Launch()
	c.Node(3).WaitReady(60 * time.Second)
	framework.Eventually(t, 20*time.Second, "cluster_size 3 and quorum 3", func() bool {
		m := c.Node(3).Metrics()
		return m["cluster_size"] == 3 && m["cluster_quorum_size"] == 3
	})
}

// TestClusterDedicatedRoles runs the KRaft-style split: three
// `chronik-server controller` processes hold __meta, two
// `chronik-server broker` processes hold the data. Clients bootstrap from
// any of them; killing the __meta leader does not stop the data path.
func TestClusterDedicatedRoles(t *testing.T) {
	ctl, brk := []string{"controller"}, []string{"broker"}
	c := framework.StartCluster(t, framework.ClusterOptions{
		Nodes: 5, ReplicationFactor: 2, MinInsyncReplicas: 1,
		Roles: [][]string{ctl, ctl, ctl, brk, brk},
	})
	for i, n := range c.Nodes {
		if want := []string{"controller", "controller", "controller", "broker", "broker"}[i]; n.Args[0] != want {
			t.Fatalf("node %d runs %q, want %q", i+1, n.Args[0], want)
		}
	}
	ctx := ctxT(t, 2*time.Minute)
	// Bootstrap through a controller: Metadata lists only the brokers.
	adm := kadm.NewClient(client(t, c.Node(1).Addr()))
	resp, err := adm.CreateTopic(ctx, 2, 2, nil, "split")
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int32
	for _, b := range md.Brokers {
		ids = append(ids, b.NodeID)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	if fmt.Sprint(ids) != "[4 5]" {
		t.Fatalf("brokers in Metadata: %v, want [4 5]", ids)
	}
	td, err := adm.ListTopics(ctx, "split")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range td["split"].Partitions {
		if fmt.Sprint(p.Replicas) != "[4 5]" && fmt.Sprint(p.Replicas) != "[5 4]" {
			t.Fatalf("partition %d placed on %v, want the brokers 4 and 5", p.Partition, p.Replicas)
		}
	}

	cl := client(t, c.Node(4).Addr(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	produceRange(t, ctx, cl, "split", 0, 100)
	var meta int
	framework.Eventually(t, 20*time.Second, "__meta leader", func() bool {
		meta = c.RaftLeader("__meta", 0)
		return meta != 0
	})
	if meta > 3 {
		t.Fatalf("__meta led by broker-only node %d", meta)
	}
	c.Node(meta).Kill()
	produceRange(t, ctx, cl, "split", 100, 200)
	got := map[string]int{}
	for _, r := range consumeAll(t, []string{c.Node(5).Addr()}, "split") {
		got[string(r.Value)]++
	}
	for i := 0; i < 200; i++ {
		if got[value(i)] != 1 {
			t.Fatalf("record %s read %d times", value(i), got[value(i)])
		}
	}
	// The surviving controllers still change metadata.
	if resp, err := adm.CreateTopic(ctx, 1, 2, nil, "after-kill"); err != nil || resp.Err != nil {
		t.Fatalf("create a topic with a controller down: %v %v", err, resp.Err)
	}
}

// TestClusterGroupSurvivesCoordinatorLoss: kill -9 the node that
// coordinates a consumer group; the group's offsets live in the
// replicated __consumer_offsets log, so a new coordinator takes over with
// every commit, the member carries on, and a newcomer resumes where the
// group stopped.
func TestClusterGroupSurvivesCoordinatorLoss(t *testing.T) {
	c := framework.StartCluster(t, framework.ClusterOptions{})
	const topic, group = "grp", "survivors"
	createTopic(t, c, topic, 3)
	ctx := ctxT(t, 3*time.Minute)
	addrs := c.Addrs()
	prod := client(t, addrs[0], kgo.SeedBrokers(addrs...), kgo.RequiredAcks(kgo.AllISRAcks()))
	produceRange(t, ctx, prod, topic, 0, 300)

	s := newSeen()
	m := startMember(t, addrs[0], group, topic, "m1", s, kgo.SeedBrokers(addrs...))
	awaitConsumed(t, s, 0, 300)
	adm := kadm.NewClient(client(t, addrs[0], kgo.SeedBrokers(addrs...)))
	var coord int32
	framework.Eventually(t, 30*time.Second, "the group's coordinator", func() bool {
		d, err := adm.DescribeGroups(ctx, group)
		if err != nil || d.Error() != nil {
			return false
		}
		coord = d[group].Coordinator.NodeID
		return d[group].State == "Stable"
	})
	framework.Eventually(t, 30*time.Second, "commits of the first 300 records", func() bool {
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false
		}
		var sum int64
		offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
		return sum == 300
	})
	t.Logf("kill -9 the coordinator, node %d", coord)
	c.Node(int(coord)).Kill()

	prod2 := client(t, addrs[0], kgo.SeedBrokers(c.Addrs()...), kgo.RequiredAcks(kgo.AllISRAcks()))
	produceRange(t, ctx, prod2, topic, 300, 600)
	awaitConsumed(t, s, 300, 600)
	m.close(t)
	adm2 := kadm.NewClient(client(t, c.Addrs()[0], kgo.SeedBrokers(c.Addrs()...)))
	committedAtEnd(t, ctx, adm2, group, topic, 3)

	// A newcomer in the same group starts at the committed offsets.
	s2 := newSeen()
	m2 := startMember(t, c.Addrs()[0], group, topic, "m2", s2, kgo.SeedBrokers(c.Addrs()...))
	produceRange(t, ctx, prod2, topic, 600, 610)
	awaitConsumed(t, s2, 600, 610)
	m2.close(t)
	if old := 600 - len(s2.missing(0, 600)); old > 0 {
		t.Fatalf("the newcomer re-read %d records the group had committed", old)
	}
}

// TestClusterFetchFromFollower (KIP-392): a consumer in a follower's rack
// is sent to that follower by the leader and reads everything from it.
func TestClusterFetchFromFollower(t *testing.T) {
	c := framework.StartCluster(t, framework.ClusterOptions{Racks: []string{"rack-1", "rack-2", "rack-3"}})
	const topic = "near"
	createTopic(t, c, topic, 1)
	ctx := ctxT(t, 2*time.Minute)
	prod := client(t, c.Addrs()[0], kgo.SeedBrokers(c.Addrs()...), kgo.RequiredAcks(kgo.AllISRAcks()))
	var rs []*kgo.Record
	for i := 0; i < 200; i++ { // incompressible, so the bytes sent count
		rs = append(rs, &kgo.Record{Topic: topic, Value: append([]byte(fmt.Sprintf("%04d", i)), randomBytes(10_000)...)})
	}
	if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	leader := c.RaftLeader(topic, 0)
	follower := 1 + leader%3
	awaitInSync(t, c, topic, 1, 3)
	out := func(id int) float64 { return c.Node(id).Metrics()["kafka_bytes_out_total"] }
	leaderBefore, followerBefore := out(leader), out(follower)

	cons := client(t, c.Addrs()[0], kgo.SeedBrokers(c.Addrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.Rack(fmt.Sprintf("rack-%d", follower)))
	n := 0
	for n < len(rs) {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records", n, len(rs))
		}
		fs.EachRecord(func(r *kgo.Record) {
			if want := fmt.Sprintf("%04d", n); string(r.Value[:4]) != want {
				t.Fatalf("record %d is %q", n, r.Value[:4])
			}
			n++
		})
	}
	fromLeader, fromFollower := out(leader)-leaderBefore, out(follower)-followerBefore
	t.Logf("leader %d sent %.0f bytes, follower %d sent %.0f bytes", leader, fromLeader, follower, fromFollower)
	if fromFollower < 2_000_000 || fromLeader > 1_000_000 {
		t.Fatalf("the records did not come from follower %d in the consumer's rack", follower)
	}
}
