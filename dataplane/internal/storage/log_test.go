package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/chronik-stream/chronik/dataplane/internal/batch"
)

// fillLog appends n batches of 1-5 records and 40-700 byte values with
// rising epochs and timestamps.
func fillLog(t testing.TB, l *Log, m *model, n int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	ts := int64(1_700_000_000_000)
	epoch := int32(1)
	for i := range n {
		if i%40 == 39 {
			epoch += 2
		}
		ts += int64(rng.IntN(50))
		mustAppend(t, l, m, makeBatch(1+rng.IntN(5), ts, 40+rng.IntN(660), fmt.Sprint(i)), epoch)
	}
}

// checkEveryOffset reads at every offset with a one-byte budget: the chunk
// must be exactly the batch holding the offset (KIP-74 returns it whole).
// It also checks the offset index never points past the batch.
func checkEveryOffset(t *testing.T, l *Log, m *model) {
	t.Helper()
	end := l.LogEndOffset()
	for off := l.LogStartOffset(); off < end; off++ {
		c, err := l.Read(off, 1, end)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		got, err := c.ReadAll()
		c.Release()
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		i := m.containing(off)
		if !bytes.Equal(got, m.batches[i]) || c.FirstOffset != m.bases[i] {
			t.Fatalf("read %d: got batch at %d (%d bytes), want batch %d at %d", off, c.FirstOffset, len(got), i, m.bases[i])
		}
	}
	l.mu.RLock()
	segs := append([]*segment(nil), l.segs...)
	l.mu.RUnlock()
	entries := 0
	for _, s := range segs {
		off, _ := s.indexes(s.size, s.next, l.log, l.cfg.Load().IndexIntervalBytes)
		entries += len(off)
		r := newHeadReader(s.f, s.size)
		for _, e := range off {
			h, err := r.header(int64(e.pos))
			if err != nil || h.BaseOffset != s.base+int64(e.rel) {
				t.Fatalf("segment %d: index entry %+v points at %+v (%v)", s.base, e, h, err)
			}
		}
		r.free()
	}
	if entries == 0 {
		t.Fatal("no offset index entries at all")
	}
}

func TestRoundTripAcrossSizeRolls(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 8 << 10, IndexIntervalBytes: 512}
	l := openLog(t, cfg)
	var m model
	fillLog(t, l, &m, 400, 1)
	if n := segmentCount(l); n < 20 {
		t.Fatalf("only %d segments after 400 appends", n)
	}
	checkLog(t, l, &m)
	checkEveryOffset(t, l, &m)

	// Clean reopen trusts the indexes; an unclean one rebuilds them.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, cfg)
	checkLog(t, l, &m)
	checkEveryOffset(t, l, &m)
	fillLog(t, l, &m, 50, 2)
	crash(t, l)
	os.Remove(filepath.Join(dir, recoveryPointFile)) // scan every segment
	l = openLog(t, cfg)
	checkLog(t, l, &m)
	checkEveryOffset(t, l, &m)
}

func TestSegmentFilesHaveKafkaNames(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Config{Dir: dir, SegmentBytes: 1000})
	var m model
	for i := range 3 {
		mustAppend(t, l, &m, makeBatch(2, 0, 600, fmt.Sprint(i)), 0)
	}
	for _, base := range []int64{0, 2, 4} {
		for _, suffix := range []string{".log", ".index", ".timeindex"} {
			name := fmt.Sprintf("%020d%s", base, suffix)
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				t.Errorf("missing %s: %v", name, err)
			}
		}
	}
}

func TestRollByAge(t *testing.T) {
	clock := newFakeClock()
	l := openLog(t, Config{Dir: t.TempDir(), SegmentMs: 1000, Now: clock.Now})
	var m model
	mustAppend(t, l, &m, makeBatch(1, 0, 10, "a"), 0)
	clock.Advance(999 * time.Millisecond)
	mustAppend(t, l, &m, makeBatch(1, 0, 10, "b"), 0)
	if n := segmentCount(l); n != 1 {
		t.Fatalf("rolled early: %d segments", n)
	}
	clock.Advance(time.Millisecond)
	mustAppend(t, l, &m, makeBatch(1, 0, 10, "c"), 0)
	if n := segmentCount(l); n != 2 {
		t.Fatalf("no roll at segment.ms: %d segments", n)
	}
	// The new segment's age starts at its first append.
	clock.Advance(10 * time.Second)
	mustAppend(t, l, &m, makeBatch(1, 0, 10, "d"), 0)
	mustAppend(t, l, &m, makeBatch(1, 0, 10, "e"), 0)
	if n := segmentCount(l); n != 3 {
		t.Fatalf("%d segments, want 3", n)
	}
	l.UpdateConfig(Config{SegmentMs: 0})
	clock.Advance(time.Hour)
	mustAppend(t, l, &m, makeBatch(1, 0, 10, "f"), 0)
	if n := segmentCount(l); n != 3 {
		t.Fatalf("rolled by age with segment.ms off: %d segments", n)
	}
	checkLog(t, l, &m)
}

func TestUpdateConfigSegmentBytes(t *testing.T) {
	l := openLog(t, Config{Dir: t.TempDir()})
	var m model
	fillLog(t, l, &m, 20, 3)
	if n := segmentCount(l); n != 1 {
		t.Fatalf("%d segments with 1 GiB segments", n)
	}
	l.UpdateConfig(Config{SegmentBytes: 2000})
	fillLog(t, l, &m, 20, 4)
	if n := segmentCount(l); n < 5 {
		t.Fatalf("only %d segments after segment.bytes shrank", n)
	}
	checkLog(t, l, &m)
}

func TestReadLimits(t *testing.T) {
	l := openLog(t, Config{Dir: t.TempDir()})
	var m model
	for i := range 5 {
		mustAppend(t, l, &m, makeBatch(3, 0, 100*(i+1), fmt.Sprint(i)), 0) // offsets 0-2, 3-5, ...
	}
	size := func(i int) int { return len(m.batches[i]) }
	cases := []struct {
		name      string
		offset    int64
		maxBytes  int
		maxOffset int64
		want      []int // batch indexes
	}{
		{"exact two", 0, size(0) + size(1), 100, []int{0, 1}},
		{"one byte short of two", 0, size(0) + size(1) - 1, 100, []int{0}},
		{"oversize first batch", 3, 1, 100, []int{1}},
		{"zero budget", 3, 0, 100, []int{1}},
		{"middle of a batch", 7, size(2), 100, []int{2}},
		{"last record of a batch", 5, 1 << 20, 100, []int{1, 2, 3, 4}},
		{"stops at high watermark", 0, 1 << 20, 6, []int{0, 1}},
		{"high watermark inside range", 4, 1 << 20, 9, []int{1, 2}},
		{"at high watermark", 6, 1 << 20, 6, nil},
		{"at log end", 15, 1 << 20, 100, nil},
	}
	for _, c := range cases {
		ch, err := l.Read(c.offset, c.maxBytes, c.maxOffset)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, _ := ch.ReadAll()
		ch.Release()
		var want []byte
		for _, i := range c.want {
			want = append(want, m.batches[i]...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: got %d bytes, want batches %v (%d bytes)", c.name, len(got), c.want, len(want))
		}
		if len(c.want) > 0 {
			last := c.want[len(c.want)-1]
			if ch.NextOffset != m.bases[last]+3 || ch.FirstOffset != m.bases[c.want[0]] {
				t.Fatalf("%s: offsets %d..%d", c.name, ch.FirstOffset, ch.NextOffset)
			}
		}
	}
	if _, err := l.Read(16, 1, 100); !isOutOfRange(err) {
		t.Fatalf("read past end: %v", err)
	}
	if _, err := l.Read(-1, 1, 100); !isOutOfRange(err) {
		t.Fatalf("read below start: %v", err)
	}
	// Bytes and ReadInto agree, and ReadInto honours a short buffer.
	ch, _ := l.Read(0, 1<<20, 100)
	defer ch.Release()
	short := make([]byte, 10)
	if n, err := ch.ReadInto(short); n != 10 || err != nil || !bytes.Equal(short, m.batches[0][:10]) {
		t.Fatalf("short ReadInto: %d %v", n, err)
	}
	if !bytes.Equal(ch.Bytes(), m.from(0)) {
		t.Fatal("Bytes differs from the log")
	}
}

func TestAppendRejectsBadFraming(t *testing.T) {
	l := openLog(t, Config{Dir: t.TempDir()})
	good := makeBatch(2, 0, 10, "x")
	bad := [][]byte{nil, good[:len(good)-1], append(bytes.Clone(good), 1, 2, 3), func() []byte {
		b := bytes.Clone(good)
		b[16] = 1
		return b
	}()}
	for i, b := range bad {
		if _, _, err := l.Append(b, 0); err == nil {
			t.Fatalf("case %d: append accepted bad framing", i)
		}
	}
	if l.LogEndOffset() != 0 || l.Size() != 0 {
		t.Fatalf("failed appends left data: end %d size %d", l.LogEndOffset(), l.Size())
	}
	// Several batches in one append take consecutive offsets and do not
	// change the caller's buffer.
	multi := append(makeBatch(2, 0, 10, "a"), makeBatch(3, 0, 10, "b")...)
	orig := bytes.Clone(multi)
	var m model
	first, last := mustAppend(t, l, &m, multi, 4)
	if first != 5 || last != 4 || !bytes.Equal(multi, orig) {
		t.Fatalf("multi append: next %d last %d, buffer changed %v", first, last, !bytes.Equal(multi, orig))
	}
	checkLog(t, l, &m)
}

func TestOffsetForTimestamp(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 3000, IndexIntervalBytes: 300}
	l := openLog(t, cfg)
	var m model
	rng := rand.New(rand.NewPCG(7, 7))
	ts := int64(1000)
	for i := range 200 {
		ts += int64(rng.IntN(20))
		bts := ts
		if i%17 == 0 {
			bts = ts - 300 // an out-of-order producer clock
		}
		mustAppend(t, l, &m, makeBatch(1+rng.IntN(3), bts, 50+rng.IntN(200), fmt.Sprint(i)), 0)
	}
	check := func() {
		t.Helper()
		start := l.LogStartOffset()
		for q := int64(500); q <= ts+10; q += 3 {
			wantOff, wantTs, wantOK := int64(-1), int64(-1), false
			for _, b := range m.batches {
				h, _ := batch.ParseHeader(b)
				if h.NextOffset() > start && h.MaxTimestamp >= q {
					wantOff, wantTs, wantOK = max(h.BaseOffset, start), h.MaxTimestamp, true
					break
				}
			}
			off, gotTs, ok := l.OffsetForTimestamp(q)
			if off != wantOff || gotTs != wantTs || ok != wantOK {
				t.Fatalf("ts %d: got (%d, %d, %v), want (%d, %d, %v)", q, off, gotTs, ok, wantOff, wantTs, wantOK)
			}
		}
		var maxOff, maxTs int64 = -1, -1
		for _, b := range m.batches {
			h, _ := batch.ParseHeader(b)
			if h.MaxTimestamp > maxTs {
				maxOff, maxTs = h.LastOffset(), h.MaxTimestamp
			}
		}
		if o, mt := l.MaxTimestamp(); o != maxOff || mt != maxTs {
			t.Fatalf("max timestamp (%d, %d), want (%d, %d)", o, mt, maxOff, maxTs)
		}
	}
	check()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, cfg) // closed segments load their time indexes lazily
	check()
	if err := l.SetLogStartOffset(m.bases[60] + 1); err != nil {
		t.Fatal(err)
	}
	check()
}

func TestSetLogStartOffset(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 2000}
	l := openLog(t, cfg)
	var m model
	fillLog(t, l, &m, 60, 5)
	segs := segmentCount(l)
	end := l.LogEndOffset()
	mid := m.bases[30] + 1 // inside a batch
	if err := l.SetLogStartOffset(mid); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != mid || segmentCount(l) >= segs {
		t.Fatalf("start %d, %d of %d segments left", l.LogStartOffset(), segmentCount(l), segs)
	}
	if _, err := l.Read(mid-1, 1, end); !isOutOfRange(err) {
		t.Fatalf("read below start: %v", err)
	}
	c, err := l.Read(mid, 1, end)
	if err != nil || c.FirstOffset != m.bases[m.containing(mid)] {
		t.Fatalf("read at start: %+v %v", c, err)
	}
	c.Release()
	if err := l.SetLogStartOffset(3); err != nil || l.LogStartOffset() != mid {
		t.Fatalf("start moved back: %d %v", l.LogStartOffset(), err)
	}
	if err := l.SetLogStartOffset(end + 1); !isOutOfRange(err) {
		t.Fatalf("start past end: %v", err)
	}
	checkLog(t, l, &m)

	// Persisted: a clean and an unclean reopen keep it.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, cfg)
	if l.LogStartOffset() != mid {
		t.Fatalf("start after reopen %d, want %d", l.LogStartOffset(), mid)
	}
	crash(t, l)
	l = openLog(t, cfg)
	if l.LogStartOffset() != mid {
		t.Fatalf("start after crash %d, want %d", l.LogStartOffset(), mid)
	}
	// Up to the log end: every closed segment goes, the active one stays.
	if err := l.SetLogStartOffset(end); err != nil {
		t.Fatal(err)
	}
	if segmentCount(l) != 1 || l.LogStartOffset() != end || l.LogEndOffset() != end {
		t.Fatalf("after start=end: %d segments, [%d, %d)", segmentCount(l), l.LogStartOffset(), l.LogEndOffset())
	}
	if c, err := l.Read(end, 1, end); err != nil || c.Len != 0 {
		t.Fatalf("read at end: %+v %v", c, err)
	}
	first, _ := mustAppend(t, l, nil, makeBatch(1, 0, 10, "z"), 9)
	if first != end {
		t.Fatalf("append after delete got %d, want %d", first, end)
	}
}

func TestRetentionByTime(t *testing.T) {
	clock := newFakeClock()
	now := clock.Now().UnixMilli()
	l := openLog(t, Config{Dir: t.TempDir(), SegmentBytes: 1500, RetentionMs: 60_000, Now: clock.Now})
	var m model
	// Segments of old batches, then recent ones.
	for i := range 30 {
		ts := now - 3_600_000 + int64(i)
		if i >= 20 {
			ts = now - 1000
		}
		mustAppend(t, l, &m, makeBatch(2, ts, 300, fmt.Sprint(i)), 0)
	}
	before := segmentCount(l)
	n, err := l.EnforceRetention()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || segmentCount(l) != before-n {
		t.Fatalf("deleted %d of %d segments", n, before)
	}
	// Every old batch is gone, every recent one kept.
	if start := l.LogStartOffset(); start > m.bases[20] || start <= m.bases[15] {
		t.Fatalf("log start %d, recent batches start at %d", start, m.bases[20])
	}
	checkLog(t, l, &m)
	if n, _ := l.EnforceRetention(); n != 0 {
		t.Fatalf("second pass deleted %d", n)
	}
	// Time passes: everything but the active segment goes.
	clock.Advance(time.Hour)
	if _, err := l.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	if segmentCount(l) != 1 {
		t.Fatalf("%d segments left, want only the active one", segmentCount(l))
	}
	l.UpdateConfig(Config{RetentionMs: -1, SegmentBytes: 1500})
	fillLog(t, l, nil, 20, 9)
	clock.Advance(1000 * time.Hour)
	if n, _ := l.EnforceRetention(); n != 0 {
		t.Fatalf("retention.ms=-1 deleted %d segments", n)
	}
}

func TestRetentionBySize(t *testing.T) {
	l := openLog(t, Config{Dir: t.TempDir(), SegmentBytes: 2000, RetentionBytes: 5000, RetentionMs: -1})
	var m model
	fillLog(t, l, &m, 80, 11)
	total := l.Size()
	n, err := l.EnforceRetention()
	if err != nil || n == 0 {
		t.Fatalf("deleted %d: %v", n, err)
	}
	l.mu.RLock()
	var closed int64
	for _, s := range l.segs[:len(l.segs)-1] {
		closed += s.size
	}
	first := l.segs[0].size
	l.mu.RUnlock()
	size := l.Size()
	// Kafka's rule: delete the oldest while the rest still exceeds the limit.
	if size-first >= 5000 && closed > 0 {
		t.Fatalf("size %d: one more segment (%d) could go", size, first)
	}
	if size+0 < 5000-2000 && total > 5000 {
		t.Fatalf("deleted too much: %d left", size)
	}
	checkLog(t, l, &m)
}

func TestTruncateAll(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 2000}
	l := openLog(t, cfg)
	fillLog(t, l, nil, 30, 12)
	if err := l.TruncateAll(0); err != nil { // the new segment reuses a name
		t.Fatal(err)
	}
	if l.LogEndOffset() != 0 || l.Size() != 0 || segmentCount(l) != 1 {
		t.Fatalf("after truncate to 0: end %d size %d", l.LogEndOffset(), l.Size())
	}
	fillLog(t, l, nil, 30, 13)
	if err := l.TruncateAll(1000); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != 1000 || l.LogEndOffset() != 1000 || l.DurableOffset() != 1000 {
		t.Fatalf("after truncate: [%d, %d) durable %d", l.LogStartOffset(), l.LogEndOffset(), l.DurableOffset())
	}
	if e, off := l.OffsetForLeaderEpoch(3); e != -1 || off != -1 {
		t.Fatalf("epochs survived truncate: %d %d", e, off)
	}
	if _, err := l.Read(10, 1, 2000); !isOutOfRange(err) {
		t.Fatalf("read old offset: %v", err)
	}
	var m model
	if first, _ := mustAppend(t, l, &m, makeBatch(2, 0, 10, "n"), 8); first != 1002 {
		t.Fatalf("append after truncate next %d", first)
	}
	m.bases[0] = 1000
	m.batches[0] = stored(m.batches[0], 1000, 8)
	mustSync(t, l, 1002)
	crash(t, l)
	l = openLog(t, cfg)
	if l.LogStartOffset() != 1000 {
		t.Fatalf("start after reopen %d", l.LogStartOffset())
	}
	checkLog(t, l, &m)
	if e, off := l.OffsetForLeaderEpoch(8); e != 8 || off != 1002 {
		t.Fatalf("epoch 8 after reopen: %d %d", e, off)
	}
}

func TestClosedLog(t *testing.T) {
	l := openLog(t, Config{Dir: t.TempDir()})
	mustAppend(t, l, nil, makeBatch(1, 0, 1, "a"), 0)
	c, err := l.Read(0, 100, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// A chunk taken before Close stays readable until released.
	if _, err := c.ReadAll(); err != nil {
		t.Fatalf("chunk after close: %v", err)
	}
	c.Release()
	c.Release()
	if _, _, err := l.Append(makeBatch(1, 0, 1, "b"), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if _, err := l.Read(0, 1, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := l.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("directory survived Delete: %v", err)
	}
}

func TestLeftoverFilesAndBadIndexes(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 2000, IndexIntervalBytes: 200}
	l := openLog(t, cfg)
	var m model
	fillLog(t, l, &m, 40, 14)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// A torn index of a closed segment, an orphan index, a temp file and
	// someone else's file in the directory.
	idx := filepath.Join(dir, segmentName(0)+indexSuffix)
	if err := os.WriteFile(idx, []byte{0, 0, 0, 9, 0, 0}, 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, segmentName(99999)+indexSuffix), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, logStartFile+tmpSuffix), []byte("junk"), 0o644)
	os.WriteFile(filepath.Join(dir, "producer.snapshot"), []byte("keep"), 0o644)
	l = openLog(t, cfg)
	checkLog(t, l, &m)
	checkEveryOffset(t, l, &m)
	if _, err := os.Stat(filepath.Join(dir, segmentName(99999)+indexSuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("orphan index survived")
	}
	if _, err := os.Stat(filepath.Join(dir, "producer.snapshot")); err != nil {
		t.Fatal("removed a file it does not own")
	}
}

// TestReadMatchesModel checks reads that skip batches with the offset index
// against a batch-by-batch walk of the model, over random offsets, byte
// limits and high watermarks, within and across segments.
func TestReadMatchesModel(t *testing.T) {
	l := openLog(t, Config{Dir: t.TempDir(), IndexIntervalBytes: 300, SegmentBytes: 20000})
	var m model
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 300 {
		mustAppend(t, l, &m, makeBatch(1+rng.IntN(4), 0, 20+rng.IntN(400), fmt.Sprint(i)), 0)
	}
	end := l.LogEndOffset()
	for range 3000 {
		off, maxBytes, maxOffset := rng.Int64N(end), rng.IntN(12000), 1+rng.Int64N(end+5)
		c, err := l.Read(off, maxBytes, maxOffset)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.ReadAll()
		c.Release()
		if err != nil {
			t.Fatal(err)
		}
		var want []byte
		i := m.containing(off)
		next := off
		for j := i; j < len(m.batches); j++ {
			h, _ := batch.ParseHeader(m.batches[j])
			if h.BaseOffset >= maxOffset || j > i && (len(want)+len(m.batches[j]) > maxBytes || segmentOf(l, h.BaseOffset) != segmentOf(l, m.bases[i])) {
				break
			}
			want = append(want, m.batches[j]...)
			next = h.NextOffset()
		}
		if !bytes.Equal(got, want) || c.Len > 0 && c.NextOffset != next {
			t.Fatalf("read %d max %d bytes below %d: got %d bytes up to %d, want %d bytes up to %d", off, maxBytes, maxOffset, len(got), c.NextOffset, len(want), next)
		}
	}
}

// segmentOf is the base offset of the segment holding off.
func segmentOf(l *Log, off int64) int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	base := int64(-1)
	for _, s := range l.segs {
		if s.base <= off {
			base = s.base
		}
	}
	return base
}

// Append keeps no copy of what it wrote per log: many logs that each took
// one large append hold no more heap than one would.
func TestAppendPinsNoBufferPerLog(t *testing.T) {
	const logs, size = 48, 1 << 20
	b := makeBatch(1, 0, size, "big")
	var ls []*Log
	for i := range logs {
		ls = append(ls, openLog(t, Config{Dir: filepath.Join(t.TempDir(), fmt.Sprint(i))}))
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	for _, l := range ls {
		if _, _, err := l.Append(b, 0); err != nil {
			t.Fatal(err)
		}
	}
	if grew := int64(heap()) - int64(before); grew > logs*size/4 {
		t.Fatalf("heap grew %d MiB after one %d MiB append to each of %d logs", grew>>20, size>>20, logs)
	}
	runtime.KeepAlive(ls)
}
