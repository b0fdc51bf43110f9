package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestIndexerRule(t *testing.T) {
	ix := newIndexer(100, 1000)
	// Batches of 400 bytes: an entry once more than 1000 bytes went by.
	pos := int64(0)
	for i := range 10 {
		base := int64(100 + 2*i)
		ts := int64(50 + i)
		if i == 4 {
			ts = 10 // out of order: does not move the max
		}
		ix.add(base, base+1, ts, pos, 400)
		pos += 400
	}
	off, tim := ix.take()
	if got := fmt.Sprint(off); got != "[{6 1200} {12 2400} {18 3600}]" {
		t.Fatalf("offset entries %s", got)
	}
	// Each offset entry brings a time entry for the max so far, batch included.
	if got := fmt.Sprint(tim); got != "[{53 7} {56 13} {59 19}]" {
		t.Fatalf("time entries %s", got)
	}
	ix.add(120, 121, 70, pos, 400) // not indexed: too close to the last entry
	if off, tim := ix.take(); len(off)+len(tim) != 0 {
		t.Fatalf("entries too soon: %v %v", off, tim)
	}
	ix.final()
	if _, tim := ix.take(); fmt.Sprint(tim) != "[{70 21}]" {
		t.Fatalf("final time entry %v", tim)
	}
	ix.final()
	if _, tim := ix.take(); len(tim) != 0 {
		t.Fatalf("second final added %v", tim)
	}
}

func TestIndexDecodeAndLookup(t *testing.T) {
	es := []offsetEntry{{3, 100}, {9, 250}, {20, 900}}
	b := appendOffsetEntries(nil, es)
	got, err := decodeOffsetIndex(b, 1000, 30)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(es) {
		t.Fatalf("decode: %v %v", got, err)
	}
	for _, c := range []struct{ rel, pos int64 }{{0, 0}, {2, 0}, {3, 100}, {8, 100}, {9, 250}, {19, 250}, {20, 900}, {1 << 40, 900}} {
		if p := floorPos(es, c.rel); p != c.pos {
			t.Errorf("floorPos(%d) = %d, want %d", c.rel, p, c.pos)
		}
	}
	bad := map[string][]byte{
		"partial":           b[:7],
		"past size":         appendOffsetEntries(nil, []offsetEntry{{3, 1000}}),
		"past span":         appendOffsetEntries(nil, []offsetEntry{{30, 10}}),
		"offsets repeat":    appendOffsetEntries(nil, []offsetEntry{{3, 10}, {3, 20}}),
		"positions go back": appendOffsetEntries(nil, []offsetEntry{{3, 10}, {4, 5}}),
	}
	for name, b := range bad {
		if _, err := decodeOffsetIndex(b, 1000, 30); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	tes := []timeEntry{{10, 2}, {15, 2}, {40, 9}}
	tg, err := decodeTimeIndex(appendTimeEntries(nil, tes), 30)
	if err != nil || fmt.Sprint(tg) != fmt.Sprint(tes) {
		t.Fatalf("decode time: %v %v", tg, err)
	}
	for _, c := range []struct{ ts, rel int64 }{{5, 0}, {10, 2}, {39, 2}, {40, 9}, {99, 9}} {
		if r := floorTime(tes, c.ts); r != c.rel {
			t.Errorf("floorTime(%d) = %d, want %d", c.ts, r, c.rel)
		}
	}
	for name, b := range map[string][]byte{
		"partial":     appendTimeEntries(nil, tes)[:13],
		"ts repeats":  appendTimeEntries(nil, []timeEntry{{10, 1}, {10, 2}}),
		"offset back": appendTimeEntries(nil, []timeEntry{{10, 3}, {11, 2}}),
		"past span":   appendTimeEntries(nil, []timeEntry{{10, 30}}),
	} {
		if _, err := decodeTimeIndex(b, 30); err == nil {
			t.Errorf("time %s: accepted", name)
		}
	}
}

func TestIndexFilesMatchMemory(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Config{Dir: dir, SegmentBytes: 6000, IndexIntervalBytes: 300})
	fillLog(t, l, nil, 60, 41)
	l.mu.RLock()
	segs := append([]*segment(nil), l.segs...)
	l.mu.RUnlock()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		ob, _ := os.ReadFile(s.path + indexSuffix)
		tb, _ := os.ReadFile(s.path + timeIndexSuffix)
		if string(ob) != string(appendOffsetEntries(nil, s.off)) || string(tb) != string(appendTimeEntries(nil, s.tim)) {
			t.Fatalf("segment %d: index files differ from memory", s.base)
		}
		if len(s.tim) == 0 || s.tim[len(s.tim)-1].ts != s.maxTs {
			t.Fatalf("segment %d: last time entry %v, max timestamp %d", s.base, s.tim, s.maxTs)
		}
	}
}

// TestOpenScansOnlyWhatItMust shows the fast paths: after a clean Close
// only the active segment's tail is read, and after a crash only segments
// from the recovery point. Damage elsewhere goes unseen, as intended.
func TestOpenScansOnlyWhatItMust(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 2000}
	l := openLog(t, cfg)
	fillLog(t, l, nil, 40, 42)
	mustSync(t, l, l.LogEndOffset()) // the recovery point moves to the active segment
	segs, end := segmentCount(l), l.LogEndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	f, _ := os.OpenFile(names[1], os.O_RDWR, 0)
	f.WriteAt([]byte{0xba, 0xd0}, 100)
	f.Close()

	l = openLog(t, cfg)
	l.mu.RLock()
	for _, s := range l.segs[:len(l.segs)-1] {
		if s.loaded {
			t.Errorf("clean open loaded the indexes of closed segment %d", s.base)
		}
	}
	l.mu.RUnlock()
	if segmentCount(l) != segs || l.LogEndOffset() != end {
		t.Fatalf("clean open scanned closed segments: %d segments, end %d", segmentCount(l), l.LogEndOffset())
	}
	crash(t, l)
	l = openLog(t, cfg)
	if segmentCount(l) != segs || l.LogEndOffset() != end {
		t.Fatalf("unclean open scanned below the recovery point: %d segments, end %d", segmentCount(l), l.LogEndOffset())
	}
}
