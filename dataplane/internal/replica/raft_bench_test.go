package replica

import (
	"context"
	"testing"
	"time"

	"github.com/chronik-stream/chronik/dataplane/internal/partition"
)

// BenchmarkRaftProduce16KiB measures acks=-1 produce throughput through
// one 3-replica group in one process: 16 KiB batches submitted in order
// from one goroutine (like a connection reader) with up to 32 awaiting
// commit. The three replicas share the machine, so a real broker has
// about three times the headroom per node.
func BenchmarkRaftProduce16KiB(b *testing.B) {
	tm := fastTimings()
	c := newTestCluster(b, 3, tm)
	c.createTopic("bench", 1, nil)
	ln, _ := c.leader("bench", 0, 20*time.Second)
	p := ln.rr.Partition("bench", 0)
	rec := makeSizedBatch(16, "bench", 1000, -1, 0, 0)
	b.SetBytes(int64(len(rec)))
	ctx := context.Background()
	const window = 32
	var waits []func(context.Context) (partition.AppendResult, error)
	wait := func(w func(context.Context) (partition.AppendResult, error)) {
		if _, err := w(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		w, err := ln.rr.Produce(ctx, p, rec, -1)
		if err != nil {
			b.Fatal(err)
		}
		waits = append(waits, w)
		if len(waits) == window {
			wait(waits[0])
			waits = waits[1:]
		}
	}
	for _, w := range waits {
		wait(w)
	}
	b.StopTimer()
	c.awaitIdentical("bench", 0, p.LogEndOffset())
}
