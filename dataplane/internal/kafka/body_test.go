package kafka

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestBodyClasses(t *testing.T) {
	for _, tc := range []struct{ n, wantCap int }{
		{1, 1},
		{64<<10 - 1, 64<<10 - 1}, // small: allocated to size
		{64 << 10, 64 << 10},
		{64<<10 + 1, 128 << 10},
		{1 << 20, 1 << 20},
		{3 << 20, 4 << 20},
		{16 << 20, 16 << 20},
		{16<<20 + 1, 16<<20 + 1}, // beyond the largest class
	} {
		b := getBody(tc.n)
		if len(b) != tc.n || cap(b) != tc.wantCap {
			t.Errorf("getBody(%d): len %d cap %d, want cap %d", tc.n, len(b), cap(b), tc.wantCap)
		}
		putBody(b)
	}
	// A buffer whose capacity is no class is never pooled, so a later
	// getBody cannot hand out a buffer shorter than a class promises.
	putBody(make([]byte, 100<<10))
	for range 100 {
		if b := getBody(128 << 10); cap(b) != 128<<10 {
			t.Fatalf("getBody(128 KiB) returned cap %d", cap(b))
		}
	}
}

// TestPooledProduceBodiesKeepRecords produces large batches from several
// clients with every Produce body overwritten as it goes back to its pool.
// If anything still read a body after its release (a batch not yet copied,
// a wait reading records), records would fail their CRC or come back
// changed.
func TestPooledProduceBodiesKeepRecords(t *testing.T) {
	poisonBodies.Store(true)
	defer poisonBodies.Store(false)
	addr := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	const topic, parts = "pooled", 3
	createTopic(t, ctx, admin, topic, parts, nil)

	const producers, perProducer = 3, 300
	sent := map[string][]byte{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, producers*perProducer)
	for p := range producers {
		acks := kgo.AllISRAcks()
		// A broker that breaks the records must fail the test, not hang it.
		opts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(20 * time.Millisecond),
			kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordDeliveryTimeout(15 * time.Second),
			kgo.AllowIdempotentProduceCancellation()}
		if p == 0 {
			acks = kgo.LeaderAck()
			opts = append(opts, kgo.DisableIdempotentWrite())
		}
		cl, err := kgo.NewClient(append(opts, kgo.RequiredAcks(acks))...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		for i := range perProducer {
			v := make([]byte, 2048+i%7*1024)
			rand.Read(v)
			k := fmt.Sprintf("%d-%d", p, i)
			mu.Lock()
			sent[k] = v
			mu.Unlock()
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Key: []byte(k), Value: v}, func(_ *kgo.Record, err error) {
				defer wg.Done()
				if err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("produce: %v", err)
	}

	offsets := map[int32]kgo.Offset{}
	for i := range int32(parts) {
		offsets[i] = kgo.NewOffset().AtStart()
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for got := 0; got < len(sent); {
		fs := cons.PollFetches(ctx)
		if errs := fs.Errors(); len(errs) > 0 {
			t.Fatalf("consume after %d of %d records: %v", got, len(sent), errs[0].Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			if want, ok := sent[string(r.Key)]; !ok || !bytes.Equal(r.Value, want) {
				t.Errorf("record %q at %d/%d: value differs from what was produced", r.Key, r.Partition, r.Offset)
			}
		})
	}
}
