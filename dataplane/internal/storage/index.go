package storage

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
)

const (
	offsetEntrySize = 8  // uint32 relOffset, uint32 position
	timeEntrySize   = 12 // int64 timestamp, uint32 relOffset
)

// offsetEntry says the batch with base offset segment.base+rel starts at pos.
type offsetEntry struct {
	rel uint32
	pos uint32
}

// timeEntry says every batch up to offset segment.base+rel has a max
// timestamp of at most ts, and the batch holding that offset reached it.
type timeEntry struct {
	ts  int64
	rel uint32
}

// indexer applies the sparse index rules as batches are laid down, both on
// the append path and when recovery rebuilds a segment's indexes. It also
// tracks the segment's largest timestamp.
type indexer struct {
	base     int64
	interval int
	since    int // log bytes since the last offset index entry

	maxTs      int64 // largest batch max timestamp, -1 when none
	maxTsOff   int64 // last offset of the batch that carried it
	lastTimeTs int64 // timestamp of the last time index entry, -1 when none

	off []offsetEntry // entries not yet handed on
	tim []timeEntry
}

func newIndexer(base int64, interval int) *indexer {
	return &indexer{base: base, interval: interval, maxTs: -1, maxTsOff: -1, lastTimeTs: -1}
}

// add notes one batch written at pos.
func (ix *indexer) add(base, last, maxTs, pos int64, size int) {
	if maxTs > ix.maxTs {
		ix.maxTs, ix.maxTsOff = maxTs, last
	}
	if ix.since > ix.interval {
		ix.off = append(ix.off, offsetEntry{rel: uint32(base - ix.base), pos: uint32(pos)})
		ix.maybeTimeEntry()
		ix.since = 0
	}
	ix.since += size
}

// final adds the closing time index entry, so that the last entry holds the
// segment's largest timestamp.
func (ix *indexer) final() { ix.maybeTimeEntry() }

func (ix *indexer) maybeTimeEntry() {
	if ix.maxTs > ix.lastTimeTs {
		ix.tim = append(ix.tim, timeEntry{ts: ix.maxTs, rel: uint32(ix.maxTsOff - ix.base)})
		ix.lastTimeTs = ix.maxTs
	}
}

// take returns and forgets the pending entries; the slices are reused, so
// the caller must copy them before the next add.
func (ix *indexer) take() ([]offsetEntry, []timeEntry) {
	off, tim := ix.off, ix.tim
	ix.off, ix.tim = ix.off[:0], ix.tim[:0]
	return off, tim
}

func appendOffsetEntries(dst []byte, es []offsetEntry) []byte {
	for _, e := range es {
		dst = binary.BigEndian.AppendUint32(dst, e.rel)
		dst = binary.BigEndian.AppendUint32(dst, e.pos)
	}
	return dst
}

func appendTimeEntries(dst []byte, es []timeEntry) []byte {
	for _, e := range es {
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.ts))
		dst = binary.BigEndian.AppendUint32(dst, e.rel)
	}
	return dst
}

// decodeOffsetIndex parses and checks an .index file against its segment:
// strictly increasing offsets and positions, all inside the segment.
func decodeOffsetIndex(b []byte, size, span int64) ([]offsetEntry, error) {
	if len(b)%offsetEntrySize != 0 {
		return nil, fmt.Errorf("offset index: %d bytes is not a whole number of entries", len(b))
	}
	es := make([]offsetEntry, len(b)/offsetEntrySize)
	for i := range es {
		e := offsetEntry{rel: binary.BigEndian.Uint32(b[i*8:]), pos: binary.BigEndian.Uint32(b[i*8+4:])}
		if int64(e.pos) >= size || int64(e.rel) >= span || (i > 0 && (e.rel <= es[i-1].rel || e.pos <= es[i-1].pos)) {
			return nil, fmt.Errorf("offset index: entry %d (%d @%d) out of order or past the segment", i, e.rel, e.pos)
		}
		es[i] = e
	}
	return es, nil
}

// decodeTimeIndex parses and checks a .timeindex file: strictly increasing
// timestamps, non-decreasing offsets, all inside the segment.
func decodeTimeIndex(b []byte, span int64) ([]timeEntry, error) {
	if len(b)%timeEntrySize != 0 {
		return nil, fmt.Errorf("time index: %d bytes is not a whole number of entries", len(b))
	}
	es := make([]timeEntry, len(b)/timeEntrySize)
	for i := range es {
		e := timeEntry{ts: int64(binary.BigEndian.Uint64(b[i*12:])), rel: binary.BigEndian.Uint32(b[i*12+8:])}
		if int64(e.rel) >= span || (i > 0 && (e.ts <= es[i-1].ts || e.rel < es[i-1].rel)) {
			return nil, fmt.Errorf("time index: entry %d (%d @%d) out of order or past the segment", i, e.ts, e.rel)
		}
		es[i] = e
	}
	return es, nil
}

// floorPos is the position of the last indexed batch whose base offset is
// at most rel, or 0.
func floorPos(es []offsetEntry, rel int64) int64 {
	if rel > math.MaxUint32 {
		rel = math.MaxUint32
	}
	i := sort.Search(len(es), func(i int) bool { return int64(es[i].rel) > rel })
	if i == 0 {
		return 0
	}
	return int64(es[i-1].pos)
}

// ceilIndex finds the last index entry whose batch starts at or before
// pos, at or below relative offset rel and before size, and returns its
// position and relative offset: every batch before it ends by pos and has a
// base offset below rel.
func ceilIndex(es []offsetEntry, pos, rel, size int64) (int64, int64, bool) {
	i := sort.Search(len(es), func(i int) bool {
		p := int64(es[i].pos)
		return p > pos || p >= size || int64(es[i].rel) > rel
	})
	if i == 0 {
		return 0, 0, false
	}
	return int64(es[i-1].pos), int64(es[i-1].rel), true
}

// floorTime is the relative offset of the last time entry with a timestamp
// at most ts, or 0: no batch before it can have reached ts.
func floorTime(es []timeEntry, ts int64) int64 {
	i := sort.Search(len(es), func(i int) bool { return es[i].ts > ts })
	if i == 0 {
		return 0
	}
	return int64(es[i-1].rel)
}

// ixMark is an indexer's state before an append, to undo it when the write
// fails.
type ixMark struct {
	since                       int
	maxTs, maxTsOff, lastTimeTs int64
	off, tim                    int
}

func (ix *indexer) mark() ixMark {
	return ixMark{since: ix.since, maxTs: ix.maxTs, maxTsOff: ix.maxTsOff, lastTimeTs: ix.lastTimeTs, off: len(ix.off), tim: len(ix.tim)}
}

func (ix *indexer) reset(m ixMark) {
	ix.since, ix.maxTs, ix.maxTsOff, ix.lastTimeTs = m.since, m.maxTs, m.maxTsOff, m.lastTimeTs
	ix.off, ix.tim = ix.off[:m.off], ix.tim[:m.tim]
}
