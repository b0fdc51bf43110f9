package storage

import (
	"bytes"
	"fmt"
	"testing"
)

// truncateFixture writes batches of 3 records over several small segments,
// with the leader epoch changing every few batches, some of it never
// synced. It returns the log and the model.
func truncateFixture(t *testing.T, dir string) (*Log, *model) {
	t.Helper()
	l := openLog(t, Config{Dir: dir, SegmentBytes: 1024, IndexIntervalBytes: 256})
	m := &model{}
	for i := range 40 {
		mustAppend(t, l, m, makeBatch(3, int64(1000+i), 40, fmt.Sprint("b", i)), int32(1+i/7))
		if i == 20 {
			mustSync(t, l, l.LogEndOffset())
		}
	}
	if segmentCount(l) < 5 {
		t.Fatalf("want several segments, have %d", segmentCount(l))
	}
	return l, m
}

func TestTruncateTo(t *testing.T) {
	for _, tc := range []struct {
		name  string
		batch int // truncate at the base of this batch
	}{
		{"inside the active segment", 38},
		{"inside an earlier segment", 9},
		{"at a segment boundary", -1},
		{"to the first batch after the start", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l, m := truncateFixture(t, dir)
			at := tc.batch
			if at < 0 { // the base offset of the second segment
				l.mu.RLock()
				base := l.segs[1].base
				l.mu.RUnlock()
				at = int(base / 3)
			}
			off := m.bases[at]
			if err := l.TruncateTo(off); err != nil {
				t.Fatalf("truncate to %d: %v", off, err)
			}
			m.truncate(off)
			checkLog(t, l, m)
			latest := int32(1 + (at-1)/7)
			if e, end := l.OffsetForLeaderEpoch(latest); e != latest || end != off {
				t.Fatalf("after truncate: epoch %d ends at %d, want %d at %d", e, end, latest, off)
			}
			if e, end := l.OffsetForLeaderEpoch(latest + 1); e != -1 || end != -1 {
				t.Fatalf("after truncate: epoch %d is still known (%d, %d)", latest+1, e, end)
			}

			// Appending continues at off, byte for byte what a replay writes.
			for i := at; i < at+5; i++ {
				_, last := mustAppend(t, l, m, makeBatch(3, int64(1000+i), 40, fmt.Sprint("b", i)), int32(1+i/7))
				if last != int64(3*i+2) {
					t.Fatalf("append after truncate ends at %d, want %d", last, 3*i+2)
				}
			}
			checkLog(t, l, m)
			mustSync(t, l, l.LogEndOffset())

			// Both a clean and an unclean reopen see the same log.
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openLog(t, Config{Dir: dir, SegmentBytes: 1024, IndexIntervalBytes: 256})
			checkLog(t, l, m)
			crash(t, l)
			l = openLog(t, Config{Dir: dir, SegmentBytes: 1024, IndexIntervalBytes: 256})
			checkLog(t, l, m)
			want := int64(21) // batch 7 starts epoch 2
			if at+4 < 7 {
				want = l.LogEndOffset()
			}
			if e, end := l.OffsetForLeaderEpoch(1); e != 1 || end != want {
				t.Fatalf("epoch 1 ends at %d (epoch %d), want %d", end, e, want)
			}
		})
	}
}

func TestTruncateToEdges(t *testing.T) {
	l, m := truncateFixture(t, t.TempDir())
	end := l.LogEndOffset()
	if err := l.TruncateTo(end); err != nil {
		t.Fatalf("truncate to the end: %v", err)
	}
	checkLog(t, l, m)
	for _, off := range []int64{end + 1, 0, m.bases[5] + 1} {
		if err := l.TruncateTo(off); !isOutOfRange(err) {
			t.Fatalf("truncate to %d: %v, want out of range", off, err)
		}
	}
	checkLog(t, l, m)
	if err := l.SetLogStartOffset(m.bases[10]); err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateTo(m.bases[10]); !isOutOfRange(err) {
		t.Fatalf("truncate to the log start: %v, want out of range", err)
	}
	if err := l.TruncateTo(m.bases[12]); err != nil {
		t.Fatal(err)
	}
	m.truncate(m.bases[12])
	checkLog(t, l, m)
	if l.LogStartOffset() != m.bases[10] {
		t.Fatalf("log start %d, want %d", l.LogStartOffset(), m.bases[10])
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateTo(m.bases[11]); err != ErrClosed {
		t.Fatalf("truncate a closed log: %v", err)
	}
}

// TestTruncateToKeepsReaders reads a chunk of a segment that truncation
// then deletes: the chunk stays readable.
func TestTruncateToKeepsReaders(t *testing.T) {
	l, m := truncateFixture(t, t.TempDir())
	c, err := l.Read(m.bases[35], 1<<20, l.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if err := l.TruncateTo(m.bases[3]); err != nil {
		t.Fatal(err)
	}
	got, err := c.ReadAll()
	if err != nil {
		t.Fatalf("read a chunk of a deleted segment: %v", err)
	}
	if !bytes.HasPrefix(m.from(35), got) || len(got) == 0 {
		t.Fatalf("chunk content changed")
	}
}
