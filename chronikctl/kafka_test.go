package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaCluster starts a three-broker kfake cluster on 127.0.0.1 and returns
// its bootstrap list and an admin client for checking what the CLI did.
func kafkaCluster(t *testing.T) (string, *kfake.Cluster, *kadm.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.ClusterID("chronik-test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	addrs := c.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return strings.Join(addrs, ","), c, kadm.NewClient(cl)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pinLeaders makes partition p of topic led by node p%3, so that the
// describe output does not depend on kfake's random placement.
func pinLeaders(t *testing.T, c *kfake.Cluster, topic string, partitions int32) {
	t.Helper()
	for p := range partitions {
		if err := c.MoveTopicPartition(topic, p, p%3); err != nil {
			t.Fatalf("move %s/%d: %v", topic, p, err)
		}
	}
}

// produce writes n records to each listed partition of topic and waits for
// their acks.
func produce(t *testing.T, bootstrap, topic string, n int, partitions ...int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(bootstrap, ",")...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for _, p := range partitions {
		for i := range n {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "p%d-%d", p, i)})
		}
	}
	if err := cl.ProduceSync(testCtx(t), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func TestTopicCommands(t *testing.T) {
	bootstrap, c, adm := kafkaCluster(t)
	ctx := testCtx(t)

	r := mustRun(t, exitOK, "--bootstrap", bootstrap, "topic", "create", "orders", "--partitions", "3",
		"--replication-factor", "3", "--config", "retention.ms=86400000")
	if r.stdout != "Created topic orders.\n" {
		t.Errorf("create: stdout %q", r.stdout)
	}
	mustRun(t, exitOK, "--bootstrap", bootstrap, "topic", "create", "audit", "-p", "1", "-r", "1")
	pinLeaders(t, c, "orders", 3)
	pinLeaders(t, c, "audit", 1)

	r = mustRun(t, exitFailure, "--bootstrap", bootstrap, "topic", "create", "orders", "-p", "1")
	if !strings.HasPrefix(r.stderr, "chronikctl: topic create: create topic orders: TOPIC_ALREADY_EXISTS") {
		t.Errorf("duplicate create: stderr %q", r.stderr)
	}

	r = mustRun(t, exitOK, "--bootstrap", bootstrap, "topic", "describe", "orders")
	golden(t, "topic_describe", r.stdout)

	r = mustRun(t, exitOK, "--bootstrap", bootstrap, "topic", "list")
	golden(t, "topic_list", r.stdout)

	r = mustRun(t, exitOK, "--bootstrap", bootstrap, "--json", "topic", "describe", "audit")
	golden(t, "topic_describe_json", r.stdout)

	mustRun(t, exitOK, "--bootstrap", bootstrap, "topic", "alter-config", "orders",
		"--set", "retention.ms=1000", "--set", "cleanup.policy=compact")
	configs, err := adm.DescribeTopicConfigs(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, cfg := range configs[0].Configs {
		if cfg.Value != nil {
			got[cfg.Key] = *cfg.Value
		}
	}
	if got["retention.ms"] != "1000" || got["cleanup.policy"] != "compact" {
		t.Errorf("after alter-config: retention.ms=%q cleanup.policy=%q", got["retention.ms"], got["cleanup.policy"])
	}
	mustRun(t, exitOK, "--bootstrap", bootstrap, "topic", "alter-config", "orders", "--delete", "cleanup.policy")

	r = mustRun(t, exitOK, "--bootstrap", bootstrap, "topic", "delete", "audit")
	if r.stdout != "Deleted topic audit.\n" {
		t.Errorf("delete: stdout %q", r.stdout)
	}
	r = mustRun(t, exitFailure, "--bootstrap", bootstrap, "topic", "describe", "audit")
	if !strings.HasPrefix(r.stderr, "chronikctl: topic describe: topic audit: UNKNOWN_TOPIC_OR_PARTITION") {
		t.Errorf("describe deleted topic: stderr %q", r.stderr)
	}
	r = mustRun(t, exitFailure, "--bootstrap", bootstrap, "topic", "delete", "audit")
	if !strings.Contains(r.stderr, "delete topic audit: UNKNOWN_TOPIC_OR_PARTITION") {
		t.Errorf("delete twice: stderr %q", r.stderr)
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if names := topics.Names(); len(names) != 1 || names[0] != "orders" {
		t.Errorf("topics after delete: %v", names)
	}
}

// consumeAll joins group with one member, reads want records and commits
// them. The returned client stays in the group until closed.
func consumeAll(t *testing.T, bootstrap, group, topic string, want int) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(bootstrap, ",")...),
		kgo.ClientID("billing-1"), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	got := 0
	for got < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			cl.Close()
			t.Fatalf("consumed %d of %d records: %v", got, want, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		got += fs.NumRecords()
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		cl.Close()
		t.Fatalf("commit: %v", err)
	}
	return cl
}

func TestGroupCommands(t *testing.T) {
	bootstrap, c, adm := kafkaCluster(t)
	ctx := testCtx(t)
	mustRun(t, exitOK, "--bootstrap", bootstrap, "topic", "create", "orders", "-p", "3", "-r", "3")
	pinLeaders(t, c, "orders", 3)
	produce(t, bootstrap, "orders", 10, 0, 1, 2)

	consumer := consumeAll(t, bootstrap, "billing", "orders", 30)
	defer consumer.Close()
	// Five more on partition 0 after the commit: a lag of 5 there.
	produce(t, bootstrap, "orders", 5, 0)

	described, err := adm.DescribeGroups(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	g := described["billing"]
	if len(g.Members) != 1 {
		t.Fatalf("billing has %d members, want 1", len(g.Members))
	}
	// The member id ends in a random UUID; mask it, keeping its length so
	// the columns stay aligned.
	id := g.Members[0].MemberID
	if !strings.HasPrefix(id, "billing-1-") {
		t.Fatalf("member id %q does not start with the client id", id)
	}
	normalize := strings.NewReplacer(id, "billing-1-"+strings.Repeat("X", len(id)-len("billing-1-")))

	r := mustRun(t, exitOK, "--bootstrap", bootstrap, "group", "describe", "billing")
	golden(t, "group_describe", normalize.Replace(r.stdout))

	r = mustRun(t, exitOK, "--bootstrap", bootstrap, "group", "list")
	golden(t, "group_list", r.stdout)

	r = mustRun(t, exitFailure, "--bootstrap", bootstrap, "group", "reset-offsets", "billing", "--to-earliest")
	if want := "chronikctl: group reset-offsets: group billing is not empty (state Stable, 1 member): stop its consumers first\n"; r.stderr != want {
		t.Errorf("reset of a live group: stderr %q, want %q", r.stderr, want)
	}

	consumer.Close()
	eventually(t, 10*time.Second, "billing to become empty", func() bool {
		d, err := adm.DescribeGroups(ctx, "billing")
		return err == nil && d["billing"].State == "Empty"
	})

	r = mustRun(t, exitOK, "--bootstrap", bootstrap, "group", "describe", "billing")
	golden(t, "group_describe_empty", r.stdout)

	r = mustRun(t, exitOK, "--bootstrap", bootstrap, "group", "reset-offsets", "billing", "--to-earliest", "--dry-run")
	golden(t, "group_reset_dry_run", r.stdout)
	assertCommitted(t, adm, "billing", map[int32]int64{0: 10, 1: 10, 2: 10})

	r = mustRun(t, exitOK, "--bootstrap", bootstrap, "group", "reset-offsets", "billing", "--to-offset", "12")
	golden(t, "group_reset_to_offset", r.stdout)
	assertCommitted(t, adm, "billing", map[int32]int64{0: 12, 1: 10, 2: 10}) // clamped to the log end

	mustRun(t, exitOK, "--bootstrap", bootstrap, "group", "reset-offsets", "billing", "--topic", "orders", "--to-datetime", "2000-01-01T00:00:00Z")
	assertCommitted(t, adm, "billing", map[int32]int64{0: 0, 1: 0, 2: 0})

	mustRun(t, exitOK, "--bootstrap", bootstrap, "group", "reset-offsets", "billing", "--to-latest")
	assertCommitted(t, adm, "billing", map[int32]int64{0: 15, 1: 10, 2: 10})

	mustRun(t, exitOK, "--bootstrap", bootstrap, "group", "reset-offsets", "billing", "--to-datetime", "2999-01-01T00:00:00")
	assertCommitted(t, adm, "billing", map[int32]int64{0: 15, 1: 10, 2: 10})

	r = mustRun(t, exitOK, "--bootstrap", bootstrap, "--json", "group", "reset-offsets", "billing", "--to-earliest")
	var resets []offsetReset
	if err := json.Unmarshal([]byte(r.stdout), &resets); err != nil {
		t.Fatal(err)
	}
	if len(resets) != 3 || resets[0].Old != 15 || resets[0].New != 0 {
		t.Errorf("--json reset: %+v", resets)
	}

	r = mustRun(t, exitFailure, "--bootstrap", bootstrap, "group", "reset-offsets", "billing", "--to-earliest", "--to-latest")
	if !strings.Contains(r.stderr, "give exactly one of") {
		t.Errorf("two targets: stderr %q", r.stderr)
	}

	r = mustRun(t, exitOK, "--bootstrap", bootstrap, "group", "delete", "billing")
	if r.stdout != "Deleted group billing.\n" {
		t.Errorf("delete: stdout %q", r.stdout)
	}
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 0 {
		t.Errorf("groups after delete: %v", listed.Groups())
	}
}

func assertCommitted(t *testing.T, adm *kadm.Client, group string, want map[int32]int64) {
	t.Helper()
	got, err := adm.FetchOffsets(testCtx(t), group)
	if err != nil {
		t.Fatal(err)
	}
	for p, w := range want {
		o, ok := got.Lookup("orders", p)
		if !ok || o.Err != nil || o.At != w {
			t.Errorf("%s committed offset of orders/%d: %+v (found %v), want %d", group, p, o, ok, w)
		}
	}
}

func TestKafkaUnreachable(t *testing.T) {
	r := mustRun(t, exitUnreachable, "--bootstrap", "127.0.0.1:1", "--timeout", "500ms", "topic", "list")
	if !strings.Contains(r.stderr, "chronikctl: topic list: cannot reach") {
		t.Errorf("stderr %q", r.stderr)
	}
}
