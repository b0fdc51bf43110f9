package storage

import (
	"errors"
	"fmt"
	"slices"
	"sort"
)

// TruncateTo removes every batch at or above off, which must be the base
// offset of a batch, and keeps the rest: the segment holding off becomes
// the active one again, cut at off, and the segments after it are deleted.
// A Raft replica uses it when it restores a snapshot at start-up: the
// entries after the snapshot are applied again and must append the same
// batches once. off must be above the log start (use TruncateAll below
// it); off equal to the log end changes nothing. It is one of the
// writer's calls.
func (l *Log) TruncateTo(off int64) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.ckMu.Lock()
	defer l.ckMu.Unlock()

	l.mu.RLock()
	closed, start, end := l.closed, l.logStart, l.logEnd
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > off }) - 1
	var s *segment
	var size, next int64
	if i >= 0 {
		s, size, next = l.segs[i], l.segs[i].size, l.segs[i].next
	}
	l.mu.RUnlock()
	switch {
	case closed:
		return ErrClosed
	case off == end:
		return nil
	case off <= start || off > end || s == nil:
		return fmt.Errorf("truncate to %d outside (%d, %d]: %w", off, start, end, ErrOffsetOutOfRange)
	}
	pos, err := l.positionOf(s, size, next, off)
	if err != nil {
		return fmt.Errorf("truncate to %d: %w", off, err)
	}
	if err := s.f.Truncate(pos); err != nil {
		return fmt.Errorf("truncate to %d: segment %d: %w", off, s.base, err)
	}
	ix := newIndexer(s.base, l.cfg.Load().IndexIntervalBytes)
	if endPos, endOff, err := scanSegment(s.f, s.base, ix, 0, s.base, pos, false, nil); err != nil || endPos != pos || endOff != off {
		return fmt.Errorf("truncate to %d: rescan segment %d: ends at %d/%d: %w", off, s.base, endPos, endOff, errors.Join(err, ErrCorrupt))
	}
	if err := l.reopenAsActive(s, ix); err != nil {
		return fmt.Errorf("truncate to %d: %w", off, err)
	}
	dropped, rolled := l.cutAfter(i, s, pos, off, ix)
	var errs []error
	for _, d := range dropped {
		errs = append(errs, d.removeFiles())
		d.unref()
	}
	// Segments rolled before s and not yet fsynced: sync them now, so the
	// recovery point may move to s.
	for _, d := range rolled {
		if d != s && !slices.Contains(dropped, d) {
			errs = append(errs, l.fsync(d.f), l.fsync(d.idxF), l.fsync(d.timF))
			d.closeIndexFiles()
		}
		d.unref()
	}
	l.mu.RLock()
	epochs := l.epochs.encode()
	l.mu.RUnlock()
	errs = append(errs,
		l.fsync(s.f), l.fsync(s.idxF), l.fsync(s.timF),
		l.writeFileAtomic(epochFile, epochs),
		l.writeFileAtomic(recoveryPointFile, encodeOffsetCheckpoint(min(s.base, off))))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("truncate to %d: %w", off, err)
	}
	l.resetDurable(min(l.DurableOffset(), off))
	l.log.Info("truncated log", "new_end_offset", off, "old_end_offset", end, "deleted_segments", len(dropped))
	return nil
}

// positionOf finds the file position of the batch of s starting at off.
func (l *Log) positionOf(s *segment, size, next, off int64) (int64, error) {
	idx, _ := s.indexes(size, next, l.log, l.cfg.Load().IndexIntervalBytes)
	pos := floorPos(idx, off-s.base)
	r := newHeadReader(s.f, size)
	defer r.free()
	for pos < size {
		h, err := r.header(pos)
		if err != nil {
			return 0, fmt.Errorf("segment %d: %w", s.base, err)
		}
		if h.BaseOffset == off {
			return pos, nil
		}
		if h.BaseOffset > off || h.NextOffset() > off {
			return 0, fmt.Errorf("offset %d is inside the batch at %d in segment %d: %w", off, h.BaseOffset, s.base, ErrOffsetOutOfRange)
		}
		pos += int64(h.Size())
	}
	if pos == size && next == off {
		return pos, nil
	}
	return 0, fmt.Errorf("offset %d not found in segment %d: %w", off, s.base, ErrCorrupt)
}

// reopenAsActive gives s fresh index files written from ix and a writer
// indexer, as the active segment has.
func (l *Log) reopenAsActive(s *segment, ix *indexer) error {
	if err := s.closeIndexFiles(); err != nil {
		return fmt.Errorf("segment %d: %w", s.base, err)
	}
	if err := s.openIndexFiles(true); err != nil {
		return fmt.Errorf("rebuild indexes of segment %d: %w", s.base, err)
	}
	s.ix, s.offWritten, s.timWritten = ix, 0, 0
	off, tim, _, err := s.writeIndexes(nil)
	if err != nil {
		return err
	}
	s.idxMu.Lock()
	s.off, s.tim, s.loaded = slices.Clone(off), slices.Clone(tim), true
	s.idxMu.Unlock()
	return nil
}

// cutAfter makes segs[i] = s, cut at pos/off, the last segment. It returns
// the segments removed after it, and takes over the unflushed list: the
// caller syncs what it still needs and drops the list's references.
func (l *Log) cutAfter(i int, s *segment, pos, off int64, ix *indexer) (dropped, rolled []*segment) {
	l.mu.Lock()
	defer l.mu.Unlock()
	dropped = slices.Clone(l.segs[i+1:])
	l.segs = l.segs[:i+1]
	s.size, s.next, s.maxTs, s.maxTsOff = pos, off, ix.maxTs, ix.maxTsOff
	rolled, l.unflushed = l.unflushed, nil
	l.logEnd = off
	l.epochs.truncateFromEnd(off)
	l.epochDirty, l.dirDirty = false, true
	return dropped, rolled
}
