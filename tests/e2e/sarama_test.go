//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/chronik-stream/chronik/tests/framework"
)

// saramaGroup collects what a Sarama consumer group member consumes and
// marks each message for the group's offset commit.
type saramaGroup struct {
	mu     sync.Mutex
	values map[string]int
	header map[string]string // value -> its "n" header
	want   int
	done   chan struct{}
	once   sync.Once
}

func newSaramaGroup(want int) *saramaGroup {
	return &saramaGroup{values: map[string]int{}, header: map[string]string{}, want: want, done: make(chan struct{})}
}

func (g *saramaGroup) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (g *saramaGroup) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (g *saramaGroup) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		g.mu.Lock()
		g.values[string(m.Value)]++
		for _, h := range m.Headers {
			if string(h.Key) == "n" {
				g.header[string(m.Value)] = string(h.Value)
			}
		}
		if len(g.values) >= g.want {
			g.once.Do(func() { close(g.done) })
		}
		g.mu.Unlock()
		sess.MarkMessage(m, "")
	}
	return nil
}

// consume runs one member of group until it has seen g.want distinct
// values, then leaves the group, which commits what it marked.
func (g *saramaGroup) consume(t *testing.T, addrs []string, cfg *sarama.Config, group, topic string) {
	t.Helper()
	cg, err := sarama.NewConsumerGroup(addrs, group, cfg)
	if err != nil {
		t.Fatalf("sarama consumer group: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, g); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	select {
	case <-g.done:
	case err := <-errc:
		t.Fatalf("sarama consume: %v", err)
	case <-time.After(60 * time.Second):
		g.mu.Lock()
		n := len(g.values)
		g.mu.Unlock()
		t.Fatalf("sarama group consumed %d of %d values in 60 s", n, g.want)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("sarama consume: %v", err)
	}
	if err := cg.Close(); err != nil {
		t.Fatalf("leave the group: %v", err)
	}
}

// Sarama, as unmodified as it ships, against a three-node cluster:
// creates a replicated topic, produces idempotently with acks=all,
// consumes in a consumer group that commits its offsets, and a second
// session of the group resumes after the commit. Sarama picks each
// request's version from the Kafka version it is told, so this runs with
// an old one (1.0), Sarama's default and a recent one.
func TestSarama(t *testing.T) {
	c := framework.StartCluster(t, framework.ClusterOptions{})
	for _, v := range []sarama.KafkaVersion{sarama.V1_0_0_0, sarama.DefaultVersion, sarama.V3_6_0_0} {
		t.Run(v.String(), func(t *testing.T) { saramaRoundTrip(t, c.Addrs(), v) })
	}
	t.Run("failover", func(t *testing.T) { saramaFailover(t, c) })
}

// saramaFailover: an idempotent Sarama producer keeps writing one record
// at a time while the partition's leader is killed with -9 and restarted;
// every send it was told succeeded is read back exactly once, in order.
func saramaFailover(t *testing.T, c *framework.Cluster) {
	const topic, total, killAt = "sarama-failover", 600, 200
	cfg := saramaConfig(sarama.V3_6_0_0)
	cfg.Consumer.Return.Errors = true

	admin, err := sarama.NewClusterAdmin(c.Addrs(), cfg)
	if err != nil {
		t.Fatalf("sarama admin: %v", err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 3}, false); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	var leader int
	framework.Eventually(t, 20*time.Second, "a leader of "+topic, func() bool {
		leader = c.RaftLeader(topic, 0)
		return leader != 0
	})
	prod, err := sarama.NewSyncProducer(c.Addrs(), cfg)
	if err != nil {
		t.Fatalf("sarama producer: %v", err)
	}
	defer prod.Close()

	var acked []string
	for i := 0; i < total; i++ {
		if i == killAt {
			t.Logf("kill -9 node %d, the leader of %s/0", leader, topic)
			c.Node(leader).Kill()
		}
		if i == killAt+100 {
			c.Node(leader).Start()
		}
		v := value(i)
		if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(v)}); err != nil {
			t.Fatalf("send %s (after %d acknowledged): %v", v, len(acked), err)
		}
		acked = append(acked, v)
	}

	cons, err := sarama.NewConsumer(c.Addrs(), cfg)
	if err != nil {
		t.Fatalf("sarama consumer: %v", err)
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatalf("consume %s/0: %v", topic, err)
	}
	defer pc.Close()
	timeout := time.After(60 * time.Second)
	for i := 0; i < len(acked); i++ {
		select {
		case m := <-pc.Messages():
			if string(m.Value) != acked[i] {
				t.Fatalf("offset %d holds %s, want %s: a record was lost or written twice", m.Offset, m.Value, acked[i])
			}
		case err := <-pc.Errors():
			t.Fatalf("consume %s/0: %v", topic, err)
		case <-timeout:
			t.Fatalf("read back %d of %d acknowledged records in 60 s", i, len(acked))
		}
	}
	cl, err := sarama.NewClient(c.Addrs(), cfg)
	if err != nil {
		t.Fatalf("sarama client: %v", err)
	}
	defer cl.Close()
	if end, err := cl.GetOffset(topic, 0, sarama.OffsetNewest); err != nil || end != int64(len(acked)) {
		t.Fatalf("%s/0 ends at offset %d (%v), want %d: records were written twice", topic, end, err, len(acked))
	}
}

// saramaConfig is an idempotent acks=all Sarama speaking version, with
// retries that outlast a leader election (up to 100 x 100 ms).
func saramaConfig(version sarama.KafkaVersion) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = version
	cfg.ClientID = "chronik-e2e"
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Producer.Return.Successes = true
	cfg.Producer.Retry.Max = 100
	cfg.Producer.Retry.Backoff = 100 * time.Millisecond
	cfg.Net.MaxOpenRequests = 1 // required with Idempotent
	cfg.Metadata.Retry.Max = 100
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	return cfg
}

func saramaRoundTrip(t *testing.T, addrs []string, version sarama.KafkaVersion) {
	topic, group := "sarama-topic-"+version.String(), "sarama-group-"+version.String()
	cfg := saramaConfig(version)
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond

	admin, err := sarama.NewClusterAdmin(addrs, cfg)
	if err != nil {
		t.Fatalf("sarama admin: %v", err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 3}, false); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	var desc []*sarama.TopicMetadata
	framework.Eventually(t, 20*time.Second, "the topic has a leader for each partition", func() bool {
		desc, err = admin.DescribeTopics([]string{topic})
		if err != nil || len(desc) != 1 || len(desc[0].Partitions) != 3 {
			return false
		}
		for _, p := range desc[0].Partitions {
			if p.Leader < 1 || len(p.Replicas) != 3 {
				return false
			}
		}
		return true
	})

	prod, err := sarama.NewSyncProducer(addrs, cfg)
	if err != nil {
		t.Fatalf("sarama producer: %v", err)
	}
	defer prod.Close()
	send := func(from, to int) {
		t.Helper()
		var msgs []*sarama.ProducerMessage
		for i := from; i < to; i++ {
			msgs = append(msgs, &sarama.ProducerMessage{
				Topic:   topic,
				Key:     sarama.StringEncoder(fmt.Sprint(i % 11)),
				Value:   sarama.StringEncoder(value(i)),
				Headers: []sarama.RecordHeader{{Key: []byte("n"), Value: []byte(fmt.Sprint(i))}},
			})
		}
		if err := prod.SendMessages(msgs); err != nil {
			t.Fatalf("produce %d-%d: %v", from, to, err)
		}
		for _, m := range msgs {
			if m.Offset < 0 {
				t.Fatalf("produce %s: no offset in the answer", m.Value)
			}
		}
	}
	const first, more = 300, 60
	send(0, first)

	g1 := newSaramaGroup(first)
	g1.consume(t, addrs, cfg, group, topic)
	for i := 0; i < first; i++ {
		if g1.values[value(i)] == 0 {
			t.Fatalf("the group never consumed %s", value(i))
		}
		if h := g1.header[value(i)]; h != fmt.Sprint(i) {
			t.Fatalf("%s came with header n=%q, want %d", value(i), h, i)
		}
	}

	offs, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2}})
	if err != nil {
		t.Fatalf("committed offsets: %v", err)
	}
	var committed int64
	for p, b := range offs.Blocks[topic] {
		if b.Err != sarama.ErrNoError {
			t.Fatalf("committed offset of partition %d: %v", p, b.Err)
		}
		committed += b.Offset
	}
	if committed != first {
		t.Fatalf("the group committed offsets adding up to %d, want %d: %+v", committed, first, offs.Blocks[topic])
	}

	// A new session of the same group starts where the first committed.
	send(first, first+more)
	g2 := newSaramaGroup(more)
	g2.consume(t, addrs, cfg, group, topic)
	for v, n := range g2.values {
		if g1.values[v] > 0 {
			t.Fatalf("the second session consumed %s again (%d times): the commit was not honoured", v, n)
		}
	}
	for i := first; i < first+more; i++ {
		if g2.values[value(i)] == 0 {
			t.Fatalf("the second session never consumed %s", value(i))
		}
	}

	groups, err := admin.DescribeConsumerGroups([]string{group})
	if err != nil || len(groups) != 1 || groups[0].Err != sarama.ErrNoError {
		t.Fatalf("describe group: %v %+v", err, groups)
	}
	if groups[0].State != "Empty" {
		t.Fatalf("group state after both sessions left: %q, want Empty", groups[0].State)
	}
}
