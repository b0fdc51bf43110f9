package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/chronik-stream/chronik/dataplane/internal/batch"
)

// Open opens the log in cfg.Dir, creating it if needed, and recovers it:
// see the package documentation. It starts the flusher; Close stops it.
func Open(cfg Config) (*Log, error) {
	if cfg.Dir == "" {
		return nil, errors.New("storage: open log: no directory")
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("open log %s: %w", cfg.Dir, err)
	}
	l := &Log{dir: cfg.Dir, log: cfg.Logger, now: cfg.Now}
	l.cfg.Store(&cfg)
	l.sync.wake = make(chan struct{}, 1)
	l.sync.stop = make(chan struct{})
	l.sync.done = make(chan struct{})
	l.cache.wake = make(chan struct{}, 1)
	if err := l.recover(); err != nil {
		for _, s := range l.segs {
			s.unref()
		}
		return nil, fmt.Errorf("open log %s: %w", cfg.Dir, err)
	}
	l.sync.durable = l.logEnd
	go l.runFlusher()
	return l, nil
}

// recover loads the segments and checkpoints, scans what may be unflushed,
// and leaves the last segment ready for appends.
func (l *Log) recover() error {
	marker := filepath.Join(l.dir, cleanShutdownFile)
	_, err := os.Stat(marker)
	clean := err == nil
	bases, err := l.listSegments()
	if err != nil {
		return err
	}
	lso, _ := l.readCheckpoint(logStartFile)
	rp, rpOK := l.readCheckpoint(recoveryPointFile)
	epochs, epochsOK := l.readEpochs()
	for _, base := range bases {
		s, err := openSegment(l.dir, base)
		if err != nil {
			return err
		}
		l.segs = append(l.segs, s)
	}

	// After a clean Close only the active segment's tail is read; otherwise
	// every segment from the recovery point (all of them without one).
	scanFrom := len(l.segs) - 1
	if !clean {
		scanFrom = 0
		if i := slices.IndexFunc(l.segs, func(s *segment) bool { return s.base >= rp }); rpOK && i >= 0 {
			scanFrom = i
		} else if rpOK {
			scanFrom = len(l.segs) - 1
		}
	}
	var visits []epochEntry
	visit := func(h batch.Header) { visits = append(visits, epochEntry{h.PartitionLeaderEpoch, h.BaseOffset}) }
	if err := l.loadSegments(scanFrom, clean, visit); err != nil {
		return err
	}
	if len(l.segs) == 0 {
		if err := l.restartAt(lso); err != nil {
			return err
		}
	}
	l.logEnd = l.segs[len(l.segs)-1].next
	l.logStart = max(lso, l.segs[0].base)
	if l.logStart > l.logEnd {
		// DeleteRecords moved the start past data that a crash then lost.
		l.log.Warn("log start offset is past the recovered end; starting over", "log_start_offset", l.logStart, "log_end_offset", l.logEnd)
		if err := l.restartAt(l.logStart); err != nil {
			return err
		}
		epochs, epochsOK, visits = epochCache{}, true, nil
	}
	if err := l.recoverEpochs(epochs, epochsOK, visits); err != nil {
		return err
	}
	if len(bases) == 0 && !clean {
		// A new log has nothing to recover and nothing to make durable
		// yet: its first flush fsyncs the files and the directory
		// (dirDirty), and until a checkpoint exists a recovery scans its
		// one segment. This saves a new partition seven fsyncs.
		l.log.Info("opened log", "log_start_offset", l.logStart, "log_end_offset", l.logEnd, "segments", len(l.segs), "new", true)
		return nil
	}
	if err := l.markRecovered(clean, marker); err != nil {
		return err
	}
	l.log.Info("opened log", "log_start_offset", l.logStart, "log_end_offset", l.logEnd,
		"segments", len(l.segs), "clean_shutdown", clean, "scanned_from_segment", l.segs[max(0, min(scanFrom, len(l.segs)-1))].base)
	return nil
}

// readCheckpoint reads an offset checkpoint; a malformed one is reported
// and ignored.
func (l *Log) readCheckpoint(name string) (int64, bool) {
	off, ok, err := readOffsetCheckpoint(filepath.Join(l.dir, name))
	if err != nil {
		l.log.Warn("ignoring unreadable checkpoint", "file", name, "err", err)
	}
	return off, ok
}

// readEpochs reads the leader epoch checkpoint; ok is false when it is
// missing or unreadable and must be rebuilt.
func (l *Log) readEpochs() (epochCache, bool) {
	b, err := os.ReadFile(filepath.Join(l.dir, epochFile))
	if errors.Is(err, os.ErrNotExist) {
		return epochCache{}, false
	}
	var c epochCache
	if err == nil {
		c, err = decodeEpochCheckpoint(b)
	}
	if err != nil {
		l.log.Warn("rebuilding leader epoch cache", "err", err)
		return epochCache{}, false
	}
	return c, true
}

// listSegments returns the base offsets of the .log files in order, and
// removes leftover temporary files and index files without a log.
func (l *Log) listSegments() ([]int64, error) {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	var bases []int64
	logs := map[string]bool{}
	for _, e := range ents {
		if base, ok := parseSegmentName(e.Name()); ok && e.Type().IsRegular() {
			bases = append(bases, base)
			logs[segmentName(base)] = true
		}
	}
	for _, e := range ents {
		name := e.Name()
		stem, isIndex := strings.CutSuffix(name, indexSuffix)
		if !isIndex {
			stem, isIndex = strings.CutSuffix(name, timeIndexSuffix)
		}
		if strings.HasSuffix(name, tmpSuffix) || (isIndex && !logs[stem]) {
			if err := os.Remove(filepath.Join(l.dir, name)); err != nil {
				return nil, fmt.Errorf("remove leftover %s: %w", name, err)
			}
		}
	}
	slices.Sort(bases)
	return bases, nil
}

func openSegment(dir string, base int64) (*segment, error) {
	s := &segment{base: base, path: filepath.Join(dir, segmentName(base)), next: base, maxTs: -1, maxTsOff: -1}
	f, err := os.OpenFile(s.path+logSuffix, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open segment %d: %w", base, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open segment %d: %w", base, err)
	}
	s.f, s.size, s.lastWrite = f, st.Size(), st.ModTime()
	s.refs.Store(1)
	return s, nil
}

// loadSegments sets up every segment: those before scanFrom are trusted
// (their indexes load on first use), those from scanFrom on are scanned,
// torn tails cut and indexes rebuilt. A cut drops every later segment.
func (l *Log) loadSegments(scanFrom int, clean bool, visit func(batch.Header)) error {
	interval := l.cfg.Load().IndexIntervalBytes
	for i := 0; i < len(l.segs); i++ {
		s, last := l.segs[i], i == len(l.segs)-1
		if i < scanFrom {
			s.next = l.segs[i+1].base
			l.loadMaxTimestamp(s, interval)
			continue
		}
		var cut bool
		var err error
		if clean && last {
			cut, err = l.reopenTail(s, interval, visit)
		} else {
			cut, err = l.recoverSegment(s, interval, visit)
		}
		if err != nil {
			return err
		}
		if !last && !cut && s.next != l.segs[i+1].base {
			l.log.Warn("segment does not end where the next begins", "segment", s.base, "end_offset", s.next, "next_segment", l.segs[i+1].base)
			cut = true
		}
		if cut && !last {
			if err := l.dropAfter(i); err != nil {
				return err
			}
		}
	}
	for i := max(scanFrom, 0); i < len(l.segs)-1; i++ {
		if err := l.closeScanned(l.segs[i]); err != nil {
			return err
		}
	}
	if n := len(l.segs); n > 0 {
		l.setCreated(l.segs[n-1])
	}
	return nil
}

// dropAfter deletes the segments after index i, which follow a cut.
func (l *Log) dropAfter(i int) error {
	for _, d := range l.segs[i+1:] {
		l.log.Warn("deleting segment after a torn one", "segment", d.base, "size", d.size)
		if err := d.removeFiles(); err != nil {
			return fmt.Errorf("delete segment %d: %w", d.base, err)
		}
		d.unref()
	}
	l.segs = l.segs[:i+1]
	return nil
}

// recoverSegment scans a segment from the start checking every batch, cuts
// it at the first bad or partial one and rewrites its indexes. The segment
// is left ready for appends; closeScanned finishes the ones that are not
// last. It reports whether it cut anything.
func (l *Log) recoverSegment(s *segment, interval int, visit func(batch.Header)) (bool, error) {
	ix := newIndexer(s.base, interval)
	end, next, reason := scanSegment(s.f, s.base, ix, 0, s.base, s.size, true, visit)
	cut := end < s.size
	if cut {
		l.log.Warn("truncating torn segment tail", "segment", s.base, "valid_bytes", end,
			"dropped_bytes", s.size-end, "end_offset", next, "reason", reason)
		if err := s.f.Truncate(end); err != nil {
			return false, fmt.Errorf("truncate segment %d: %w", s.base, err)
		}
		s.size = end
	}
	s.next, s.maxTs, s.maxTsOff = next, ix.maxTs, ix.maxTsOff
	if err := s.closeIndexFiles(); err != nil {
		return false, fmt.Errorf("segment %d: %w", s.base, err)
	}
	if err := s.openIndexFiles(true); err != nil {
		return false, fmt.Errorf("rebuild indexes of segment %d: %w", s.base, err)
	}
	s.ix, s.offWritten, s.timWritten = ix, 0, 0
	off, tim, _, err := s.writeIndexes(nil)
	if err != nil {
		return false, err
	}
	s.off, s.tim, s.loaded = slices.Clone(off), slices.Clone(tim), true
	return cut, nil
}

// reopenTail readies the active segment after a clean shutdown: it trusts
// the index files and scans only past the last offset index entry. Anything
// amiss falls back to recoverSegment.
func (l *Log) reopenTail(s *segment, interval int, visit func(batch.Header)) (bool, error) {
	ob, oerr := os.ReadFile(s.path + indexSuffix)
	tb, terr := os.ReadFile(s.path + timeIndexSuffix)
	var off []offsetEntry
	var tim []timeEntry
	err := errors.Join(oerr, terr)
	if err == nil {
		off, err = decodeOffsetIndex(ob, s.size, maxRelOffset+1)
	}
	if err == nil {
		tim, err = decodeTimeIndex(tb, maxRelOffset+1)
	}
	if err != nil {
		l.log.Warn("rebuilding active segment indexes", "segment", s.base, "err", err)
		return l.recoverSegment(s, interval, visit)
	}
	pos, expect := int64(0), s.base
	if n := len(off); n > 0 {
		pos, expect = int64(off[n-1].pos), s.base+int64(off[n-1].rel)
	}
	ix := newIndexer(s.base, interval)
	if n := len(tim); n > 0 {
		ix.maxTs, ix.maxTsOff, ix.lastTimeTs = tim[n-1].ts, s.base+int64(tim[n-1].rel), tim[n-1].ts
	}
	end, next, reason := scanSegment(s.f, s.base, ix, pos, expect, s.size, true, visit)
	if end < s.size || (len(tim) > 0 && ix.maxTsOff >= next) {
		l.log.Warn("active segment does not match its indexes after a clean shutdown; rescanning", "segment", s.base, "reason", reason)
		return l.recoverSegment(s, interval, visit)
	}
	if err := s.openIndexFiles(false); err != nil {
		return false, fmt.Errorf("open indexes of segment %d: %w", s.base, err)
	}
	s.ix, s.offWritten, s.timWritten = ix, len(off), len(tim)
	s.next, s.maxTs, s.maxTsOff = next, ix.maxTs, ix.maxTsOff
	newOff, newTim, _, err := s.writeIndexes(nil)
	if err != nil {
		return false, err
	}
	s.off, s.tim, s.loaded = append(off, newOff...), append(tim, newTim...), true
	return false, nil
}

// closeScanned finishes a scanned segment that is not the last: final time
// entry, log and indexes synced (the recovery point will skip it), index
// files closed.
func (l *Log) closeScanned(s *segment) error {
	s.ix.final()
	off, tim, _, err := s.writeIndexes(nil)
	if err != nil {
		return err
	}
	s.off, s.tim = append(s.off, off...), append(s.tim, tim...)
	s.ix = nil
	if err := errors.Join(l.fsync(s.f), l.fsync(s.idxF), l.fsync(s.timF)); err != nil {
		return fmt.Errorf("fsync segment %d: %w", s.base, err)
	}
	return s.closeIndexFiles()
}

// loadMaxTimestamp sets a trusted segment's largest timestamp from the last
// time index entry (one small read, so Open stays fast on long logs),
// loading the whole index if that entry looks wrong.
func (l *Log) loadMaxTimestamp(s *segment, interval int) {
	if ts, rel, ok := lastTimeEntry(s.path + timeIndexSuffix); ok && s.base+rel < s.next {
		if ts >= 0 {
			s.maxTs, s.maxTsOff = ts, s.base+rel
		}
		return
	}
	_, tim := s.indexes(s.size, s.next, l.log, interval)
	if n := len(tim); n > 0 {
		s.maxTs, s.maxTsOff = tim[n-1].ts, s.base+int64(tim[n-1].rel)
	}
}

// lastTimeEntry reads the last entry of a time index file; an empty file
// is (-1, 0, true).
func lastTimeEntry(path string) (ts, rel int64, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size()%timeEntrySize != 0 {
		return 0, 0, false
	}
	if st.Size() == 0 {
		return -1, 0, true
	}
	var e [timeEntrySize]byte
	if _, err := f.ReadAt(e[:], st.Size()-timeEntrySize); err != nil {
		return 0, 0, false
	}
	return int64(binary.BigEndian.Uint64(e[:])), int64(binary.BigEndian.Uint32(e[8:])), true
}

// setCreated starts the active segment's age: its first batch's timestamp
// when it has one in the past, else now. An empty segment starts its age at
// its first append.
func (l *Log) setCreated(s *segment) {
	if s.size == 0 {
		return
	}
	now := l.now()
	s.created = now
	r := newHeadReader(s.f, s.size)
	defer r.free()
	if h, err := r.header(0); err == nil && h.MaxTimestamp >= 0 && h.MaxTimestamp < now.UnixMilli() {
		s.created = time.UnixMilli(h.MaxTimestamp)
	}
}

// restartAt replaces all segments with an empty one at start. Only Open
// calls it, before anyone else sees the log.
func (l *Log) restartAt(start int64) error {
	for _, s := range l.segs {
		if err := s.removeFiles(); err != nil {
			return fmt.Errorf("delete segment %d: %w", s.base, err)
		}
		s.unref()
	}
	l.segs = nil
	s, err := createSegment(l.dir, start, l.cfg.Load().IndexIntervalBytes)
	if err != nil {
		return err
	}
	l.segs = []*segment{s}
	l.logStart, l.logEnd = start, start
	l.dirDirty = true
	return nil
}

// recoverEpochs settles the leader epoch cache: the checkpoint cut to the
// recovered log plus what the scan saw, or, without a checkpoint, a rebuild
// from every batch header.
func (l *Log) recoverEpochs(c epochCache, ok bool, visits []epochEntry) error {
	changed := false
	if !ok && l.logEnd > l.segs[0].base {
		l.log.Info("rebuilding leader epoch cache from batch headers")
		c, changed = epochCache{}, true
		for _, s := range l.segs {
			if _, _, err := scanSegment(s.f, s.base, nil, 0, s.base, s.size, false, func(h batch.Header) {
				c.assign(h.PartitionLeaderEpoch, h.BaseOffset)
			}); err != nil {
				return fmt.Errorf("rebuild leader epochs: segment %d: %w", s.base, err)
			}
		}
	} else {
		changed = c.truncateFromEnd(l.logEnd) || !ok
		for _, v := range visits {
			changed = c.assign(v.epoch, v.start) || changed
		}
	}
	changed = c.truncateFromStart(l.logStart) || changed
	l.epochs, l.epochDirty = c, changed
	return nil
}

// markRecovered makes the recovered state durable before the log is used:
// after an unclean stop, the scanned segments, the epoch checkpoint and a
// recovery point at the active segment; after a clean one, the removal of
// the marker.
func (l *Log) markRecovered(clean bool, marker string) error {
	active := l.segs[len(l.segs)-1]
	if !clean {
		if err := errors.Join(l.fsync(active.f), l.fsync(active.idxF), l.fsync(active.timF)); err != nil {
			return fmt.Errorf("fsync recovered segment %d: %w", active.base, err)
		}
		if err := l.writeFileAtomic(epochFile, l.epochs.encode()); err != nil {
			return err
		}
		l.epochDirty, l.dirDirty = false, false
		return l.writeFileAtomic(recoveryPointFile, encodeOffsetCheckpoint(active.base))
	}
	if err := os.Remove(marker); err != nil {
		return fmt.Errorf("remove clean shutdown marker: %w", err)
	}
	if err := l.syncDir(); err != nil {
		return fmt.Errorf("fsync %s: %w", l.dir, err)
	}
	l.dirDirty = false
	return nil
}

// Close stops the flusher, fsyncs everything, checkpoints and writes the
// clean shutdown marker. Chunks not yet released stay readable.
func (l *Log) Close() error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.mu.RLock()
	closed := l.closed
	l.mu.RUnlock()
	if closed {
		return nil
	}
	close(l.sync.stop)
	<-l.sync.done
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	err := l.finalFlush()
	l.mu.Lock()
	l.closed = true
	end := l.logEnd
	l.mu.Unlock()
	l.closeSyncs(end, err == nil)
	l.releaseSegments()
	if err != nil {
		return fmt.Errorf("close log %s: %w", l.dir, err)
	}
	return nil
}

// finalFlush writes the active segment's closing time entry and makes
// everything durable, then leaves the clean shutdown marker. Caller holds
// writeMu and flushMu with the flusher stopped.
func (l *Log) finalFlush() error {
	if err := l.sync.err; err != nil {
		return err
	}
	active := l.segs[len(l.segs)-1]
	active.ix.final()
	off, tim, _, err := active.writeIndexes(nil)
	if err != nil {
		return err
	}
	active.publishIndexes(off, tim)
	if err := l.syncFiles(l.unflushed, active, true); err != nil {
		return err
	}
	if err := errors.Join(l.fsync(active.idxF), l.fsync(active.timF)); err != nil {
		return fmt.Errorf("fsync indexes of segment %d: %w", active.base, err)
	}
	err = errors.Join(
		l.writeFileAtomic(epochFile, l.epochs.encode()),
		l.writeFileAtomic(recoveryPointFile, encodeOffsetCheckpoint(active.base)))
	if err != nil {
		return err
	}
	return l.writeFileAtomic(cleanShutdownFile, nil)
}

// releaseSegments drops the log's references once it is closed.
func (l *Log) releaseSegments() {
	for _, s := range l.unflushed {
		s.closeIndexFiles()
		s.unref()
	}
	l.unflushed = nil
	for _, s := range l.segs {
		s.closeIndexFiles()
		s.unref()
	}
}

// Delete closes the log without flushing and removes its directory (for
// DeleteTopics).
func (l *Log) Delete() error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.mu.Lock()
	wasClosed := l.closed
	l.closed = true
	end := l.logEnd
	l.mu.Unlock()
	if !wasClosed {
		close(l.sync.stop)
		<-l.sync.done
		l.closeSyncs(end, false)
		l.releaseSegments()
	}
	if err := os.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("delete log %s: %w", l.dir, err)
	}
	return nil
}
