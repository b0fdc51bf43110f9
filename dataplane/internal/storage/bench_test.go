package storage

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
)

func benchLog(b *testing.B) *Log {
	b.Helper()
	return openLog(b, Config{Dir: b.TempDir(), SegmentBytes: 64 << 20, RetentionBytes: 256 << 20, RetentionMs: -1,
		Logger: slog.New(slog.DiscardHandler)})
}

// BenchmarkAppend1KiB appends one-record batches with 1 KiB values, no
// fsync: the page-cache write path.
func BenchmarkAppend1KiB(b *testing.B) {
	l := benchLog(b)
	rec := makeBatch(1, 0, 1024, "bench")
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, err := l.Append(rec, 1); err != nil {
			b.Fatal(err)
		}
		if i++; i%50000 == 0 {
			l.EnforceRetention() // bound the disk a long run uses
		}
	}
}

// BenchmarkAppendSync is the acks=all path: many goroutines each append a
// 1 KiB batch and wait for it to be durable, sharing fsyncs.
func BenchmarkAppendSync(b *testing.B) {
	l := benchLog(b)
	rec := makeBatch(1, 0, 1024, "bench")
	var appendMu sync.Mutex
	before := l.fsyncs.Load()
	b.SetBytes(int64(len(rec)))
	b.SetParallelism(16) // 16 x GOMAXPROCS producers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			appendMu.Lock()
			_, last, err := l.Append(rec, 1)
			appendMu.Unlock()
			if err != nil {
				b.Error(err)
				return
			}
			if err := l.Sync(ctx, last+1); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(l.fsyncs.Load()-before)/float64(b.N), "fsyncs/op")
}

// BenchmarkRead fetches up to 1 MiB from random offsets of a 64 MiB log of
// 1 KiB batches, copying the bytes out.
func BenchmarkRead(b *testing.B) {
	l := benchLog(b)
	rec := makeBatch(1, 0, 1024, "bench")
	for range (64 << 20) / len(rec) {
		if _, _, err := l.Append(rec, 1); err != nil {
			b.Fatal(err)
		}
	}
	end := l.LogEndOffset()
	buf := make([]byte, 1<<20+len(rec))
	rng := rand.New(rand.NewPCG(1, 1))
	var total int64
	b.ReportAllocs()
	for b.Loop() {
		c, err := l.Read(rng.Int64N(end), 1<<20, end)
		if err != nil {
			b.Fatal(err)
		}
		n, err := c.ReadInto(buf)
		c.Release()
		if err != nil {
			b.Fatal(err)
		}
		total += int64(n)
	}
	b.ReportMetric(float64(total)/float64(b.N), "bytes/read")
}

// BenchmarkReadChunk locates up to 1 MiB from random offsets of a 64 MiB
// log of 1 KiB batches without copying: the zero-copy fetch path.
func BenchmarkReadChunk(b *testing.B) {
	l := benchLog(b)
	rec := makeBatch(1, 0, 1024, "bench")
	for range (64 << 20) / len(rec) {
		if _, _, err := l.Append(rec, 1); err != nil {
			b.Fatal(err)
		}
	}
	end := l.LogEndOffset()
	rng := rand.New(rand.NewPCG(1, 1))
	var total int64
	b.ReportAllocs()
	for b.Loop() {
		c, err := l.Read(rng.Int64N(end), 1<<20, end)
		if err != nil {
			b.Fatal(err)
		}
		total += int64(c.Len)
		c.Release()
	}
	b.ReportMetric(float64(total)/float64(b.N), "bytes/read")
}
