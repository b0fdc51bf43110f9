package storage

import (
	"errors"
	"fmt"
	"slices"
)

// SetLogStartOffset moves the log start offset forward to off (DeleteRecords;
// the caller checks off against the high watermark) and deletes the
// segments entirely below it. The offset is checkpointed before it takes
// effect. Moving it backwards is a no-op.
func (l *Log) SetLogStartOffset(off int64) error {
	l.ckMu.Lock()
	defer l.ckMu.Unlock()
	l.mu.RLock()
	closed, cur, end := l.closed, l.logStart, l.logEnd
	l.mu.RUnlock()
	switch {
	case closed:
		return ErrClosed
	case off <= cur:
		return nil
	case off > end:
		return fmt.Errorf("set log start offset %d past log end %d: %w", off, end, ErrOffsetOutOfRange)
	}
	if err := l.writeFileAtomic(logStartFile, encodeOffsetCheckpoint(off)); err != nil {
		return fmt.Errorf("set log start offset %d: %w", off, err)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.logStart = max(l.logStart, off)
	if l.epochs.truncateFromStart(l.logStart) {
		l.epochDirty = true
	}
	dead := l.dropPrefixLocked(l.deletableBelowStartLocked())
	l.mu.Unlock()
	if err := l.removeSegments(dead, "below log start offset"); err != nil {
		return fmt.Errorf("set log start offset %d: %w", off, err)
	}
	return nil
}

// EnforceRetention deletes whole closed segments: those entirely below the
// log start offset, then those whose largest timestamp is older than
// RetentionMs, then the oldest while the log is larger than RetentionBytes.
// The active segment is never deleted. It returns how many it deleted.
func (l *Log) EnforceRetention() (int, error) {
	cfg := l.cfg.Load()
	now := l.now().UnixMilli()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return 0, ErrClosed
	}
	k := l.deletableBelowStartLocked()
	closedN := len(l.segs) - 1
	if cfg.RetentionMs >= 0 {
		for k < closedN && now-l.segs[k].largestTimestamp() > cfg.RetentionMs {
			k++
		}
	}
	if cfg.RetentionBytes >= 0 {
		var total int64
		for _, s := range l.segs[k:] {
			total += s.size
		}
		for diff := total - cfg.RetentionBytes; k < closedN && diff-l.segs[k].size >= 0; k++ {
			diff -= l.segs[k].size
		}
	}
	dead := l.dropPrefixLocked(k)
	l.mu.Unlock()
	if err := l.removeSegments(dead, "retention"); err != nil {
		return len(dead), fmt.Errorf("enforce retention: %w", err)
	}
	return len(dead), nil
}

// largestTimestamp is the segment's largest batch timestamp, or the time of
// its last write when its batches carry none (as Kafka falls back to the
// file's modification time). Caller holds Log.mu.
func (s *segment) largestTimestamp() int64 {
	if s.maxTs >= 0 {
		return s.maxTs
	}
	return s.lastWrite.UnixMilli()
}

// deletableBelowStartLocked counts the leading closed segments that end at
// or below the log start offset. Caller holds l.mu.
func (l *Log) deletableBelowStartLocked() int {
	k := 0
	for k < len(l.segs)-1 && l.segs[k].next <= l.logStart {
		k++
	}
	return k
}

// dropPrefixLocked takes the first k segments out of the log, moving the
// log start offset and the epoch cache along. Caller holds l.mu for writing.
func (l *Log) dropPrefixLocked(k int) []*segment {
	if k == 0 {
		return nil
	}
	dead := slices.Clone(l.segs[:k])
	l.segs = slices.Delete(l.segs, 0, k)
	l.logStart = max(l.logStart, l.segs[0].base)
	if l.epochs.truncateFromStart(l.logStart) {
		l.epochDirty = true
	}
	return dead
}

// removeSegments unlinks dropped segments and drops the log's reference;
// readers holding chunks keep the descriptors until they release them.
func (l *Log) removeSegments(dead []*segment, why string) error {
	var errs []error
	for _, s := range dead {
		if err := s.removeFiles(); err != nil {
			errs = append(errs, fmt.Errorf("delete segment %d: %w", s.base, err))
		}
		l.log.Info("deleted segment", "segment", s.base, "next_offset", s.next, "size", s.size, "reason", why)
		s.unref()
	}
	return errors.Join(errs...)
}

// TruncateAll drops every segment and restarts the log, empty, at newStart
// (when a Raft snapshot is installed). It is one of the writer's calls.
func (l *Log) TruncateAll(newStart int64) error {
	if newStart < 0 {
		return fmt.Errorf("truncate all to %d: %w", newStart, ErrOffsetOutOfRange)
	}
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.ckMu.Lock()
	defer l.ckMu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	old, rolled := l.segs, l.unflushed
	var errs []error
	for _, s := range old {
		errs = append(errs, s.removeFiles())
	}
	seg, err := createSegment(l.dir, newStart, l.cfg.Load().IndexIntervalBytes)
	if err != nil {
		l.mu.Unlock()
		return fmt.Errorf("truncate all to %d: %w", newStart, errors.Join(append(errs, err)...))
	}
	l.segs, l.unflushed = []*segment{seg}, nil
	l.logStart, l.logEnd = newStart, newStart
	l.epochs = epochCache{}
	l.epochDirty, l.dirDirty = false, false
	l.mu.Unlock()

	for _, s := range rolled {
		s.closeIndexFiles()
		s.unref()
	}
	for _, s := range old {
		s.unref()
	}
	errs = append(errs,
		l.writeFileAtomic(logStartFile, encodeOffsetCheckpoint(newStart)),
		l.writeFileAtomic(epochFile, (&epochCache{}).encode()),
		l.writeFileAtomic(recoveryPointFile, encodeOffsetCheckpoint(newStart)))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("truncate all to %d: %w", newStart, err)
	}
	l.resetDurable(newStart)
	l.log.Info("truncated log", "new_start_offset", newStart, "deleted_segments", len(old))
	return nil
}
