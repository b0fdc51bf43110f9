package storage

import (
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chronik-stream/chronik/dataplane/internal/batch"
)

// writeBufs holds Append's copies of the batches it rewrites. They are
// shared by every log, so that memory follows the appends under way and
// not the partitions that ever took one (a buffer kept per log pinned
// up to 8 MiB in each of them).
var writeBufs = sync.Pool{New: func() any { return new([]byte) }}

func putWriteBuf(b *[]byte) {
	if cap(*b) > 8<<20 {
		return // do not keep one huge append's buffer
	}
	writeBufs.Put(b)
}

// Log is one partition's segmented log. See the package documentation for
// which calls may run concurrently.
type Log struct {
	dir string
	log *slog.Logger
	now func() time.Time
	cfg atomic.Pointer[Config]

	writeMu sync.Mutex // the single writer: Append, TruncateAll, Close, Delete
	ibuf    []byte     // index entry encoding scratch, reused
	wbSeg   *segment   // the segment whose writeback was last started
	wbFrom  int64      // where in wbSeg writeback has not been started yet

	flushMu sync.Mutex // one flush round (or TruncateAll, Close) at a time
	ckMu    sync.Mutex // the log start checkpoint's writers

	mu         sync.RWMutex
	segs       []*segment // by base offset; the last one is active
	logStart   int64
	logEnd     int64
	epochs     epochCache
	epochDirty bool       // epochs changed since the checkpoint was written
	unflushed  []*segment // rolled segments not yet fsynced, each holding a reference
	dirDirty   bool       // files were created since the directory was fsynced
	closed     bool

	sync   syncState
	cache  cacheState
	fsyncs atomic.Int64 // fsync calls, for tests and benchmarks
}

// Dir is the partition directory.
func (l *Log) Dir() string { return l.dir }

// LogStartOffset is the first offset still readable.
func (l *Log) LogStartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.logStart
}

// LogEndOffset is the offset the next appended record gets.
func (l *Log) LogEndOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.logEnd
}

// Size is the bytes of all segments.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.segs {
		n += s.size
	}
	return n
}

// Append writes one or more concatenated batches that the caller has
// validated, assigning offsets from the log end and stamping leaderEpoch.
// It returns the first and last offset assigned. It does not fsync (see
// Sync) and does not modify batches. Calls must not overlap.
func (l *Log) Append(batches []byte, leaderEpoch int32) (first, last int64, err error) {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.mu.RLock()
	closed, seg, next := l.closed, l.segs[len(l.segs)-1], l.logEnd
	l.mu.RUnlock()
	if closed {
		return 0, 0, ErrClosed
	}
	count, err := countOffsets(batches)
	if err != nil {
		return 0, 0, fmt.Errorf("append at %d: %w", next, err)
	}
	cfg, now := l.cfg.Load(), l.now()
	if l.shouldRoll(seg, len(batches), next+count-1, cfg, now) {
		if seg, err = l.roll(seg, next, cfg); err != nil {
			return 0, 0, fmt.Errorf("append at %d: %w", next, err)
		}
	}

	first = next
	mark := seg.ix.mark()
	wbuf := writeBufs.Get().(*[]byte)
	defer putWriteBuf(wbuf)
	*wbuf = append((*wbuf)[:0], batches...)
	pos := seg.size
	it := batch.NewIter(*wbuf)
	for b, ok := it.Next(); ok; b, ok = it.Next() {
		batch.SetBaseOffset(b, next)
		batch.SetPartitionLeaderEpoch(b, leaderEpoch)
		h, _ := batch.ParseHeader(b) // countOffsets checked it
		seg.ix.add(next, h.LastOffset(), h.MaxTimestamp, pos, len(b))
		pos += int64(len(b))
		next = h.NextOffset()
	}
	if _, err := seg.f.WriteAt(*wbuf, seg.size); err != nil {
		seg.ix.reset(mark)
		return 0, 0, fmt.Errorf("append at %d: write segment %d: %w", first, seg.base, err)
	}
	l.maybeStartWriteback(seg, seg.size+int64(len(*wbuf)))
	if step := releaseStep(cfg); step > 0 && seg.size/step != pos/step {
		l.wakeReleaser()
	}
	off, tim, ibuf, err := seg.writeIndexes(l.ibuf)
	l.ibuf = ibuf
	if err != nil {
		seg.ix.reset(mark)
		return 0, 0, fmt.Errorf("append at %d: %w", first, err)
	}

	l.mu.Lock()
	if seg.size == 0 {
		seg.created = now
	}
	seg.size, seg.next, seg.lastWrite = pos, next, now
	seg.maxTs, seg.maxTsOff = seg.ix.maxTs, seg.ix.maxTsOff
	l.logEnd = next
	latest := l.epochs.latest()
	if l.epochs.assign(leaderEpoch, first) {
		l.epochDirty = true
	}
	l.mu.Unlock()
	seg.publishIndexes(off, tim)
	if leaderEpoch < latest {
		l.log.Warn("append with an older leader epoch", "epoch", leaderEpoch, "latest_epoch", latest, "offset", first)
	}
	if l.sync.pending.Load() > 0 {
		l.wakeFlusher()
	}
	return first, next - 1, nil
}

// writebackMin is the least data Append hands to early writeback at once;
// smaller pieces would only split the disk's writes.
const writebackMin = 64 << 10

// maybeStartWriteback starts the writeback of seg up to end, in pieces of
// at least writebackMin, while syncs are frequent. Caller holds writeMu.
func (l *Log) maybeStartWriteback(seg *segment, end int64) {
	if l.wbSeg != seg || l.wbFrom > end { // a new segment, or one truncated back
		l.wbSeg, l.wbFrom = seg, 0
	}
	if end-l.wbFrom < writebackMin || !l.sync.syncsActive() {
		return
	}
	startWriteback(seg.f, l.wbFrom, end-l.wbFrom)
	l.wbFrom = end
}

// countOffsets checks the framing of an append and counts the offsets it
// takes.
func countOffsets(buf []byte) (int64, error) {
	if len(buf) == 0 || len(buf) > math.MaxInt32 {
		return 0, fmt.Errorf("%w: append of %d bytes", batch.ErrCorrupt, len(buf))
	}
	var n int64
	it := batch.NewIter(buf)
	for b, ok := it.Next(); ok; b, ok = it.Next() {
		h, err := batch.ParseHeader(b)
		if err != nil {
			return 0, err
		}
		if h.LastOffsetDelta < 0 {
			return 0, fmt.Errorf("%w: last offset delta %d", batch.ErrInvalidRecord, h.LastOffsetDelta)
		}
		n += int64(h.LastOffsetDelta) + 1
	}
	if it.Err() != nil {
		return 0, it.Err()
	}
	if len(it.Rest()) != 0 {
		return 0, fmt.Errorf("%w: %d bytes of partial batch", batch.ErrCorrupt, len(it.Rest()))
	}
	return n, nil
}

// shouldRoll reports whether an append of n bytes ending at lastOffset must
// go to a new segment. An empty segment takes any append.
func (l *Log) shouldRoll(seg *segment, n int, lastOffset int64, cfg *Config, now time.Time) bool {
	if seg.size == 0 {
		return false
	}
	return seg.size+int64(n) > cfg.SegmentBytes ||
		(cfg.SegmentMs > 0 && now.Sub(seg.created).Milliseconds() >= cfg.SegmentMs) ||
		lastOffset-seg.base > maxRelOffset
}

// roll closes the active segment and starts a new one at base. The old
// segment is fsynced by the flusher in the background.
func (l *Log) roll(old *segment, base int64, cfg *Config) (*segment, error) {
	seg, err := createSegment(l.dir, base, cfg.IndexIntervalBytes)
	if err != nil {
		return nil, err
	}
	mark := old.ix.mark()
	old.ix.final()
	off, tim, ibuf, err := old.writeIndexes(l.ibuf)
	l.ibuf = ibuf
	if err != nil {
		old.ix.reset(mark)
		seg.removeFiles()
		seg.unref()
		return nil, fmt.Errorf("roll segment %d: %w", old.base, err)
	}
	old.publishIndexes(off, tim)
	old.ix = nil
	old.ref() // held by the unflushed list
	l.mu.Lock()
	l.segs = append(l.segs, seg)
	l.unflushed = append(l.unflushed, old)
	l.dirDirty = true
	l.mu.Unlock()
	l.wakeFlusher()
	l.log.Debug("rolled segment", "segment", old.base, "size", old.size, "next_segment", base)
	return seg, nil
}

// segmentAt returns, with a reference, the segment holding offset and its
// published size and end. Caller holds l.mu.
func (l *Log) segmentAt(offset int64) (*segment, int64, int64) {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset }) - 1
	if i < 0 {
		i = 0
	}
	s := l.segs[i]
	s.ref()
	return s, s.size, s.next
}

// Read returns whole batches from the one containing offset: as many as fit
// in maxBytes, stopping before any batch whose base offset is at or past
// maxOffset (the high watermark) and at the end of the segment. The first
// batch is returned whole even when larger than maxBytes (KIP-74). Reading
// at the log end, or where the next batch is past maxOffset, returns an
// empty chunk. The caller must Release the chunk.
func (l *Log) Read(offset int64, maxBytes int, maxOffset int64) (Chunk, error) {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return Chunk{}, ErrClosed
	}
	if offset < l.logStart || offset > l.logEnd {
		start, end := l.logStart, l.logEnd
		l.mu.RUnlock()
		return Chunk{}, fmt.Errorf("read %d outside [%d, %d]: %w", offset, start, end, ErrOffsetOutOfRange)
	}
	if offset == l.logEnd {
		l.mu.RUnlock()
		return Chunk{FirstOffset: offset, NextOffset: offset}, nil
	}
	seg, size, next := l.segmentAt(offset)
	l.mu.RUnlock()
	c, err := l.readSegment(seg, size, next, offset, int64(maxBytes), maxOffset)
	if err != nil || c.Len == 0 {
		seg.unref()
		return c, err
	}
	c.h = &chunkHandle{seg: seg}
	return c, nil
}

func (l *Log) readSegment(seg *segment, size, next, offset, maxBytes, maxOffset int64) (Chunk, error) {
	off, _ := seg.indexes(size, next, l.log, l.cfg.Load().IndexIntervalBytes)
	pos := floorPos(off, offset-seg.base)
	r := newHeadReader(seg.f, size)
	defer r.free()
	var h batch.Header
	for {
		if pos >= size {
			return Chunk{}, fmt.Errorf("read %d: segment %d ends at offset %d: %w", offset, seg.base, next, ErrCorrupt)
		}
		var err error
		if h, err = r.header(pos); err != nil {
			return Chunk{}, fmt.Errorf("read %d: segment %d: %w", offset, seg.base, err)
		}
		if h.NextOffset() > offset {
			break
		}
		pos += int64(h.Size())
	}
	if h.BaseOffset >= maxOffset {
		return Chunk{FirstOffset: offset, NextOffset: offset}, nil
	}
	c := Chunk{File: seg.f, Pos: pos, FirstOffset: h.BaseOffset}
	end := pos + int64(h.Size())
	c.NextOffset = h.NextOffset()
	// Skip whole runs of batches with the index rather than reading every
	// header: only the last few batches before the limit are walked.
	if at, rel, ok := ceilIndex(off, pos+maxBytes, maxOffset-seg.base, size); ok && at > end {
		end, c.NextOffset = at, seg.base+rel
	}
	for end < size {
		h, err := r.header(end)
		if err != nil {
			return Chunk{}, fmt.Errorf("read %d: segment %d: %w", offset, seg.base, err)
		}
		if h.BaseOffset >= maxOffset || end+int64(h.Size())-pos > maxBytes {
			break
		}
		end += int64(h.Size())
		c.NextOffset = h.NextOffset()
	}
	c.Len = int(end - pos)
	c.SegmentEnd = end >= size
	return c, nil
}

// OffsetForTimestamp finds the first batch whose max timestamp is at least
// ts (ListOffsets by time) and returns its base offset (not below the log
// start) and that timestamp; ok is false when no batch reaches ts.
func (l *Log) OffsetForTimestamp(ts int64) (offset, timestamp int64, ok bool) {
	type cand struct {
		seg        *segment
		size, next int64
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return -1, -1, false
	}
	var cands []cand
	for _, s := range l.segs {
		if s.maxTs >= ts && s.size > 0 {
			s.ref()
			cands = append(cands, cand{s, s.size, s.next})
		}
	}
	start := l.logStart
	l.mu.RUnlock()
	defer func() {
		for _, c := range cands {
			c.seg.unref()
		}
	}()
	interval := l.cfg.Load().IndexIntervalBytes
	for _, c := range cands {
		off, tim := c.seg.indexes(c.size, c.next, l.log, interval)
		pos := floorPos(off, max(floorTime(tim, ts), start-c.seg.base))
		h, found, err := findTimestamp(c.seg, pos, c.size, ts, start)
		if err != nil {
			l.log.Warn("offset for timestamp: segment does not scan", "segment", c.seg.base, "err", err)
			continue
		}
		if found {
			return max(h.BaseOffset, start), h.MaxTimestamp, true
		}
	}
	return -1, -1, false
}

// findTimestamp walks a segment from pos for the first batch with a max
// timestamp of at least ts that ends after start.
func findTimestamp(seg *segment, pos, size, ts, start int64) (batch.Header, bool, error) {
	r := newHeadReader(seg.f, size)
	defer r.free()
	for pos < size {
		h, err := r.header(pos)
		if err != nil {
			return batch.Header{}, false, err
		}
		if h.MaxTimestamp >= ts && h.NextOffset() > start {
			return h, true, nil
		}
		pos += int64(h.Size())
	}
	return batch.Header{}, false, nil
}

// MaxTimestamp returns the offset and time of the largest batch timestamp
// in the log (ListOffsets MAX_TIMESTAMP), or (-1, -1) when there is none.
// The offset is the last one of the batch that carried it.
func (l *Log) MaxTimestamp() (offset, timestamp int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	offset, timestamp = -1, -1
	for _, s := range l.segs {
		if s.maxTs > timestamp && s.maxTsOff >= l.logStart {
			offset, timestamp = s.maxTsOff, s.maxTs
		}
	}
	return offset, timestamp
}

// OffsetForLeaderEpoch returns, for a follower or consumer that knows
// epoch, the largest epoch not above it and the offset where that epoch
// ended (Kafka's OffsetForLeaderEpoch); (-1, -1) for an unknown epoch.
func (l *Log) OffsetForLeaderEpoch(epoch int32) (epochOut int32, endOffset int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.epochs.endOffsetFor(epoch, l.logEnd)
}
