package storage

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/chronik-stream/chronik/dataplane/internal/batch"
)

func TestGroupCommit(t *testing.T) {
	l := openLog(t, Config{Dir: t.TempDir()})
	const goroutines, perGoroutine = 16, 25
	var appendMu sync.Mutex // Append has one caller at a time
	start := make(chan struct{})
	errs := make(chan error, goroutines)
	before := l.fsyncs.Load()
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			<-start
			for i := range perGoroutine {
				appendMu.Lock()
				_, last, err := l.Append(makeBatch(1, 0, 1024, fmt.Sprint(g, i)), 1)
				appendMu.Unlock()
				if err != nil {
					errs <- err
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err = l.Sync(ctx, last+1)
				cancel()
				if err != nil {
					errs <- err
					return
				}
				if d := l.DurableOffset(); d <= last {
					errs <- fmt.Errorf("sync to %d returned with durable offset %d", last+1, d)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	fsyncs, syncs := l.fsyncs.Load()-before, int64(goroutines*perGoroutine)
	t.Logf("%d Sync calls took %d fsyncs", syncs, fsyncs)
	if fsyncs >= syncs {
		t.Fatalf("no group commit: %d fsyncs for %d Sync calls", fsyncs, syncs)
	}
	if l.DurableOffset() != l.LogEndOffset() {
		t.Fatalf("durable %d, end %d", l.DurableOffset(), l.LogEndOffset())
	}
}

func TestSyncEdges(t *testing.T) {
	l := openLog(t, Config{Dir: t.TempDir()})
	mustAppend(t, l, nil, makeBatch(3, 0, 10, "a"), 0)
	before := l.fsyncs.Load()
	mustSync(t, l, 0) // nothing to wait for
	if l.fsyncs.Load() != before {
		t.Fatal("sync of nothing fsynced")
	}
	mustSync(t, l, 3)
	if l.DurableOffset() != 3 {
		t.Fatalf("durable %d", l.DurableOffset())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Sync(ctx, 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("sync past the end with a cancelled context: %v", err)
	}
	// A waiter for offsets never written is released by Close.
	done := make(chan error, 1)
	go func() { done <- l.Sync(context.Background(), 100) }()
	deadline := time.Now().Add(10 * time.Second)
	for l.sync.pending.Load() == 0 {
		select {
		case err := <-done:
			t.Fatalf("sync returned early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the Sync never queued")
		}
		time.Sleep(time.Millisecond)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("waiter after close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close left a Sync waiting")
	}
	if err := l.Sync(context.Background(), 50); !errors.Is(err, ErrClosed) {
		t.Fatalf("sync after close: %v", err)
	}
}

func TestChunkSurvivesSegmentDeletion(t *testing.T) {
	l := openLog(t, Config{Dir: t.TempDir(), SegmentBytes: 2000})
	var m model
	fillLog(t, l, &m, 30, 31)
	c, err := l.Read(0, 1<<20, l.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if err := l.SetLogStartOffset(l.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	if segmentCount(l) != 1 {
		t.Fatalf("%d segments left", segmentCount(l))
	}
	got, err := c.ReadAll()
	if err != nil {
		t.Fatalf("chunk of a deleted segment: %v", err)
	}
	bs, rest, err := batch.Split(got)
	if err != nil || len(rest) != 0 || len(bs) == 0 {
		t.Fatalf("chunk of a deleted segment: %d batches, %d rest, %v", len(bs), len(rest), err)
	}
	for i, b := range bs {
		if string(b) != string(m.batches[i]) {
			t.Fatalf("batch %d of a deleted segment differs", i)
		}
	}
}

// TestConcurrentReadersDuringRetention runs a writer, readers, syncs,
// DeleteRecords and retention at once; run it with -race.
func TestConcurrentReadersDuringRetention(t *testing.T) {
	l := openLog(t, Config{Dir: t.TempDir(), SegmentBytes: 4096, RetentionBytes: 32 << 10, RetentionMs: -1, IndexIntervalBytes: 512})
	const appends = 800
	done := make(chan struct{})
	errs := make(chan error, 16)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { // the writer
		defer close(done)
		for i := range appends {
			_, last, err := l.Append(makeBatch(1+i%3, int64(i), 200, fmt.Sprint(i)), int32(i/100))
			if err != nil {
				report(err)
				return
			}
			if i%50 == 0 {
				if err := l.Sync(context.Background(), last+1); err != nil {
					report(err)
					return
				}
			}
		}
	})
	wg.Go(func() { // retention and DeleteRecords
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			if _, err := l.EnforceRetention(); err != nil {
				report(err)
				return
			}
			if i%20 == 0 {
				if err := l.SetLogStartOffset(l.LogStartOffset() + 3); err != nil && !errors.Is(err, ErrOffsetOutOfRange) {
					report(err)
					return
				}
			}
			time.Sleep(100 * time.Microsecond)
		}
	})
	for r := range 3 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 0))
			var held []Chunk
			for reads := 0; ; reads++ {
				select {
				case <-done:
					for _, c := range held {
						c.Release()
					}
					return
				default:
				}
				start, end := l.LogStartOffset(), l.LogEndOffset()
				off := start + rng.Int64N(end-start+1)
				c, err := l.Read(off, 1+rng.IntN(8192), end)
				if errors.Is(err, ErrOffsetOutOfRange) {
					continue // retention moved the start meanwhile
				}
				if err != nil {
					report(fmt.Errorf("read %d: %w", off, err))
					return
				}
				if err := checkChunk(c, off); err != nil {
					report(err)
					return
				}
				if reads%7 == 0 && len(held) < 20 {
					held = append(held, c) // read again after retention ran
					continue
				}
				c.Release()
				if len(held) > 0 && reads%5 == 0 {
					if err := checkChunk(held[0], held[0].FirstOffset); err != nil {
						report(fmt.Errorf("held chunk: %w", err))
						return
					}
					held[0].Release()
					held = held[1:]
				}
				if _, _, ok := l.OffsetForTimestamp(rng.Int64N(appends)); !ok && l.LogEndOffset() > 0 {
					continue
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := l.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	// Kafka's rule leaves less than one more closed segment over the limit,
	// plus the active segment.
	if limit := int64(32<<10 + 2*(4096+1000)); l.Size() > limit {
		t.Fatalf("retention left %d bytes, more than %d", l.Size(), limit)
	}
}

// checkChunk checks a chunk holds whole valid batches, the first holding off.
func checkChunk(c Chunk, off int64) error {
	if c.Len == 0 {
		return nil
	}
	b, err := c.ReadAll()
	if err != nil {
		return err
	}
	bs, rest, err := batch.Split(b)
	if err != nil || len(rest) != 0 || len(bs) == 0 {
		return fmt.Errorf("chunk at %d: %d batches, %d rest, %v", off, len(bs), len(rest), err)
	}
	for _, raw := range bs {
		if err := batch.Validate(raw); err != nil {
			return fmt.Errorf("chunk at %d: %w", off, err)
		}
	}
	h, _ := batch.ParseHeader(bs[0])
	if h.BaseOffset > off || h.LastOffset() < off {
		return fmt.Errorf("chunk for %d starts with batch %d-%d", off, h.BaseOffset, h.LastOffset())
	}
	return nil
}

// TestEarlyWriteback checks when Append starts writeback early: only after
// a Sync had to wait, in pieces of at least writebackMin, and from the
// start of a new segment; the data stays intact and durable.
func TestEarlyWriteback(t *testing.T) {
	l := openLog(t, Config{Dir: t.TempDir(), SegmentBytes: 256 << 10})
	var m model
	big := makeBatch(4, 0, 10<<10, "w") // about 40 KiB
	mustAppend(t, l, &m, big, 0)
	mustAppend(t, l, &m, big, 0)
	if l.sync.syncsActive() || l.wbFrom != 0 {
		t.Fatalf("writeback started without syncs (active %v, from %d)", l.sync.syncsActive(), l.wbFrom)
	}
	mustSync(t, l, l.LogEndOffset())
	if !l.sync.syncsActive() {
		t.Fatal("a waiting Sync did not mark syncs active")
	}
	l.sync.lastWait.Store(int64(time.Since(syncEpoch))) // however slow the machine
	_, last := mustAppend(t, l, &m, big, 0)
	if size := l.segs[len(l.segs)-1].size; l.wbFrom != size {
		t.Fatalf("writeback started up to %d, segment is %d bytes", l.wbFrom, size)
	}
	from := l.wbFrom
	mustAppend(t, l, &m, makeBatch(1, 0, 100, "s"), 0)
	if l.wbFrom != from {
		t.Fatal("writeback started for less than writebackMin")
	}
	for range 8 { // rolls into a new segment
		l.sync.lastWait.Store(int64(time.Since(syncEpoch)))
		_, last = mustAppend(t, l, &m, big, 0)
	}
	if l.wbSeg != l.segs[len(l.segs)-1] || l.wbFrom > l.segs[len(l.segs)-1].size {
		t.Fatal("writeback does not follow the active segment")
	}
	mustSync(t, l, last+1)
	checkLog(t, l, &m)
}
