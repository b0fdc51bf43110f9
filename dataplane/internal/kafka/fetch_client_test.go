package kafka

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/chronik-stream/chronik/controlplane/metadata"
	"github.com/chronik-stream/chronik/dataplane/internal/partition"
	"github.com/chronik-stream/chronik/dataplane/internal/replica"
)

// tLogWriter sends log lines to t.Log.
type tLogWriter struct{ t testing.TB }

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startServer runs a single-node broker (local metadata, replica manager,
// Kafka server) on 127.0.0.1 and returns its address. Cleanup stops it and
// waits for its goroutines.
func startServer(t *testing.T) string { return startServerTB(t) }

func startServerTB(t testing.TB) string {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(tLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir := t.TempDir()
	meta, err := metadata.OpenLocalStore(filepath.Join(dir, "meta"), "test-cluster")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := meta.Propose(ctx, &metadata.Command{RegisterBroker: &metadata.Broker{ID: 1, Host: "127.0.0.1", Port: int32(addr.Port), Alive: true}}); err != nil {
		t.Fatal(err)
	}
	reps := replica.New(replica.Config{Dir: filepath.Join(dir, "topics"), NodeID: 1, Meta: meta, Logger: logger,
		Defaults: partition.Config{MaxMessageBytes: 1 << 20, MinInsyncReplicas: 1}})
	if err := reps.Open(); err != nil {
		t.Fatal(err)
	}
	srv := NewServer(Config{Logger: logger, Broker: &Broker{
		NodeID: 1, Meta: meta, Replicas: reps, Log: logger, DefaultPartitions: 1, DefaultReplicationFactor: 1,
		Assign: func(_ *metadata.State, partitions, _ int) ([][]int32, error) {
			out := make([][]int32, partitions)
			for i := range out {
				out[i] = []int32{1}
			}
			return out, nil
		},
	}})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); reps.Run(ctx) }()
	go func() { defer wg.Done(); srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return addr.String()
}

// TestFetchAcrossSegments reads a topic of many small segments with a real
// client pinned to each Fetch version, and checks that one fetch returns
// batches from several segments.
func TestFetchAcrossSegments(t *testing.T) {
	addr := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic, parts, perPart, segBytes = "segments", 3, 400, 64 << 10 // chunks large enough for sendfile
	admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	create := kmsg.NewPtrCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = topic, parts, 1
	seg := fmt.Sprint(segBytes)
	ct.Configs = []kmsg.CreateTopicsRequestTopicConfig{{Name: "segment.bytes", Value: &seg}}
	create.Topics = append(create.Topics, ct)
	create.TimeoutMillis = 10_000
	cresp, err := create.RequestWith(ctx, admin)
	if err != nil || cresp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create topic: %v %+v", err, cresp)
	}

	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(4<<10), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	value := func(p int32, i int) []byte {
		return append(fmt.Appendf(nil, "p%d-r%d-", p, i), bytes.Repeat([]byte{byte('a' + i%26)}, 900)...)
	}
	for i := 0; i < perPart; i += 20 {
		var recs []*kgo.Record
		for p := int32(0); p < parts; p++ {
			for j := i; j < i+20; j++ {
				recs = append(recs, &kgo.Record{Partition: p, Value: value(p, j)})
			}
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}

	for v := int16(4); v <= 16; v++ {
		t.Run(fmt.Sprintf("fetch_v%d", v), func(t *testing.T) {
			versions := kversion.Stable()
			versions.SetMaxKeyVersion(1, v)
			offsets := map[int32]kgo.Offset{}
			for p := int32(0); p < parts; p++ {
				offsets[p] = kgo.NewOffset().AtStart()
			}
			cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.MaxVersions(versions),
				kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}), kgo.FetchMaxWait(100*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			next := map[int32]int{}
			for total := 0; total < parts*perPart; {
				fs := cl.PollFetches(ctx)
				if errs := fs.Errors(); len(errs) > 0 {
					t.Fatalf("poll: %v", errs[0].Err)
				}
				fs.EachRecord(func(r *kgo.Record) {
					if want := value(r.Partition, next[r.Partition]); !bytes.Equal(r.Value, want) || r.Offset != int64(next[r.Partition]) {
						t.Fatalf("partition %d offset %d: got %.12q, want offset %d %.12q", r.Partition, r.Offset, r.Value, next[r.Partition], want)
					}
					next[r.Partition]++
					total++
				})
			}

			// One raw fetch of a whole partition spans many segments.
			req := kmsg.NewPtrFetchRequest()
			req.MaxWaitMillis, req.MaxBytes, req.SessionEpoch = 0, 1<<20, -1
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = topic
			rt.TopicID = topicID(t, ctx, cl, topic)
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.PartitionMaxBytes = 1 << 20
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			resp, err := req.RequestWith(ctx, cl)
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetVersion() != v {
				t.Fatalf("fetch answered at v%d, want v%d", resp.GetVersion(), v)
			}
			got := resp.Topics[0].Partitions[0]
			if got.ErrorCode != 0 || len(got.RecordBatches) < 3*segBytes {
				t.Fatalf("one fetch returned error %d and %d bytes, want several %d-byte segments", got.ErrorCode, len(got.RecordBatches), segBytes)
			}
		})
	}
}

// topicID looks the topic's id up with a metadata request.
func topicID(t *testing.T, ctx context.Context, cl *kgo.Client, topic string) [16]byte {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || len(resp.Topics) != 1 {
		t.Fatalf("metadata: %v", err)
	}
	return resp.Topics[0].TopicID
}

// createTopic creates topic with the given partitions and configs.
func createTopic(tb testing.TB, ctx context.Context, cl *kgo.Client, topic string, parts int32, configs map[string]string) {
	tb.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, parts, 1
	for k, v := range configs {
		rt.Configs = append(rt.Configs, kmsg.CreateTopicsRequestTopicConfig{Name: k, Value: kmsg.StringPtr(v)})
	}
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10_000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || resp.Topics[0].ErrorCode != 0 {
		tb.Fatalf("create topic %s: %v %+v", topic, err, resp)
	}
}

// BenchmarkProduce runs the benchmark driver's acks=-1 produce case in
// process: 4 idempotent producers, linger 10ms, 1 KiB records, spread over
// 1 or 16 partitions. Run with -cpuprofile to see the server's costs
// (the clients share the process).
func BenchmarkProduce(b *testing.B) {
	for _, parts := range []int32{1, 16} {
		b.Run(fmt.Sprintf("p=%d", parts), func(b *testing.B) {
			addr := startServerTB(b)
			ctx := context.Background()
			admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
			if err != nil {
				b.Fatal(err)
			}
			defer admin.Close()
			createTopic(b, ctx, admin, "bench", parts, nil)
			var cls []*kgo.Client
			for range 4 {
				cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("bench"), kgo.ProducerLinger(10*time.Millisecond),
					kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RequiredAcks(kgo.AllISRAcks()))
				if err != nil {
					b.Fatal(err)
				}
				defer cl.Close()
				if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("warm")}).FirstErr(); err != nil {
					b.Fatal(err)
				}
				cls = append(cls, cl)
			}
			value := bytes.Repeat([]byte{'v'}, 1024)
			b.SetBytes(int64(len(value)))
			b.ResetTimer()
			var wg sync.WaitGroup
			var failed sync.Once
			for i := range b.N {
				wg.Add(1)
				cls[i%len(cls)].Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
					if err != nil {
						failed.Do(func() { b.Error(err) })
					}
					wg.Done()
				})
			}
			wg.Wait()
		})
	}
}

// BenchmarkConsume reads 16 partitions of 1 KiB records (20 MB) from the
// start with one direct-partition consumer, as the benchmark driver's
// consume case does.
func BenchmarkConsume(b *testing.B) {
	addr := startServerTB(b)
	ctx := context.Background()
	const parts, records = 16, 20_000
	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("consume"), kgo.ProducerLinger(10*time.Millisecond),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	createTopic(b, ctx, prod, "consume", parts, nil)
	value := bytes.Repeat([]byte{'c'}, 1024)
	for range records {
		prod.Produce(ctx, &kgo.Record{Value: value}, nil)
	}
	if err := prod.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	offsets := map[int32]kgo.Offset{}
	for p := int32(0); p < parts; p++ {
		offsets[p] = kgo.NewOffset().AtStart()
	}
	b.SetBytes(records * 1024)
	b.ResetTimer()
	for range b.N {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"consume": offsets}),
			kgo.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		for n := 0; n < records; {
			fs := cl.PollFetches(ctx)
			if errs := fs.Errors(); len(errs) > 0 {
				b.Fatal(errs[0].Err)
			}
			n += fs.NumRecords()
		}
		cl.Close()
	}
}
