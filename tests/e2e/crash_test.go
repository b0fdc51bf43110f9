//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-stream/chronik/tests/framework"
)

// TestKillNineLosesNothingAcknowledged writes with acks=-1 from several
// producers, records every acknowledged offset, kills the server with
// SIGKILL mid-stream, restarts it and reads every acknowledged record back
// intact at its acknowledged offset.
func TestKillNineLosesNothingAcknowledged(t *testing.T) {
	srv := framework.StartStandalone(t)
	ctx := ctxT(t, 90*time.Second)
	adm := kadm.NewClient(client(t, srv.Addr()))
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "crash"); err != nil {
		t.Fatal(err)
	}

	type ack struct {
		partition int32
		offset    int64
		value     []byte
	}
	var mu sync.Mutex
	var acked []ack
	pr := client(t, srv.Addr(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite(),
		kgo.RecordRetries(0), kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(5*time.Second))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				v := make([]byte, 8, 512)
				binary.BigEndian.PutUint64(v, uint64(w)<<32|uint64(i))
				v = append(v, randomBytes(500)...)
				pr.Produce(ctx, &kgo.Record{Topic: "crash", Value: v}, func(r *kgo.Record, err error) {
					if err == nil {
						mu.Lock()
						acked = append(acked, ack{r.Partition, r.Offset, r.Value})
						mu.Unlock()
					}
				})
			}
		}()
	}
	framework.Eventually(t, 30*time.Second, "2000 acknowledged records", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 2000
	})
	srv.Kill()
	close(stop)
	wg.Wait()
	flushCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	pr.Flush(flushCtx) // outstanding records fail; only acked ones count
	cancel()
	mu.Lock()
	snapshot := append([]ack(nil), acked...)
	mu.Unlock()
	t.Logf("%d records acknowledged before SIGKILL", len(snapshot))

	srv.Start()
	byPart := map[int32]map[int64][]byte{}
	var maxOff = map[int32]int64{}
	for _, a := range snapshot {
		if byPart[a.partition] == nil {
			byPart[a.partition] = map[int64][]byte{}
		}
		byPart[a.partition][a.offset] = a.value
		maxOff[a.partition] = max(maxOff[a.partition], a.offset)
	}
	cl := client(t, srv.Addr(), kgo.ConsumeTopics("crash"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := 0
	for seen < len(snapshot) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read back %d of %d acknowledged records", seen, len(snapshot))
		}
		for _, r := range fs.Records() {
			want, ok := byPart[r.Partition][r.Offset]
			if !ok {
				continue
			}
			if !bytes.Equal(want, r.Value) {
				t.Fatalf("partition %d offset %d: content differs", r.Partition, r.Offset)
			}
			delete(byPart[r.Partition], r.Offset)
			seen++
		}
	}
}
