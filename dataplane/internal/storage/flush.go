package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// syncState is the group commit: Sync callers queue here and the flusher
// goroutine releases every caller its fsync covered.
type syncState struct {
	mu      sync.Mutex
	waiters []waiter
	durable int64 // every offset below it is on disk
	err     error // a failed fsync; sticky, as the page cache state is unknown
	closed  bool

	pending atomic.Int32  // len(waiters), read by Append without the lock
	wake    chan struct{} // capacity 1: a round is wanted
	stop    chan struct{} // closed by Close
	done    chan struct{} // closed when the flusher returns

	// lastWait is when a Sync last had to wait (since syncEpoch): while
	// syncs are frequent, Append starts the writeback of what it wrote.
	lastWait atomic.Int64
}

type waiter struct {
	upTo int64
	ch   chan error // capacity 1
}

// Sync returns once every offset below upTo is fsynced. Concurrent callers
// share fsyncs. It returns early with ctx's error, or with the error of a
// failed fsync, after which the log accepts no more syncs.
func (l *Log) Sync(ctx context.Context, upTo int64) error {
	s := &l.sync
	s.mu.Lock()
	switch {
	case s.err != nil:
		s.mu.Unlock()
		return s.err
	case upTo <= s.durable:
		s.mu.Unlock()
		return nil
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	}
	s.lastWait.Store(int64(time.Since(syncEpoch)))
	w := waiter{upTo: upTo, ch: make(chan error, 1)}
	s.waiters = append(s.waiters, w)
	s.pending.Store(int32(len(s.waiters)))
	s.mu.Unlock()
	l.wakeFlusher()
	select {
	case err := <-w.ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("sync to %d: %w", upTo, ctx.Err())
	}
}

// syncEpoch is the base of syncState.lastWait, for a monotonic clock.
var syncEpoch = time.Now()

// writebackWindow is how long after a waiting Sync appends still start
// their writeback early.
const writebackWindow = time.Second

// syncsActive reports whether a Sync waited within writebackWindow: then
// the data just written will be fsynced soon, and starting its writeback
// at once lets the disk work while the request is still being handled.
// With several partitions synced at the same time this saves a good part
// of each fdatasync's wait; with only acks=1 traffic it would just add
// writes the page cache could have absorbed.
func (s *syncState) syncsActive() bool {
	last := s.lastWait.Load()
	return last != 0 && time.Since(syncEpoch)-time.Duration(last) < writebackWindow
}

// DurableOffset is how far fsync has got: every offset below it is on disk.
func (l *Log) DurableOffset() int64 {
	l.sync.mu.Lock()
	defer l.sync.mu.Unlock()
	return l.sync.durable
}

func (l *Log) wakeFlusher() {
	select {
	case l.sync.wake <- struct{}{}:
	default:
	}
}

// runFlusher is the flusher goroutine, owned by the Log: Open starts it,
// Close stops it and waits. Between fsync rounds it hands back the page
// cache behind the log's tail (cache.go).
func (l *Log) runFlusher() {
	defer close(l.sync.done)
	for {
		select {
		case <-l.sync.stop:
			return
		case <-l.cache.wake:
			l.releaseCache()
		case <-l.sync.wake:
			if err := l.flushRound(); err != nil {
				l.log.Error("fsync failed; the log no longer acknowledges syncs", "err", err)
			}
		}
	}
}

// flushRound fsyncs what was written so far: segments rolled since the
// last round, the active segment and, when files were created, the
// directory; then the epoch checkpoint if it changed and the recovery point
// if segments were rolled. It then releases the waiters it covered.
func (l *Log) flushRound() error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	target := l.logEnd
	active := l.segs[len(l.segs)-1]
	active.ref()
	defer active.unref()
	rolled := slices.Clone(l.unflushed)
	dirDirty, epochDirty := l.dirDirty, l.epochDirty
	l.dirDirty, l.epochDirty = false, false
	var epochs []byte
	if epochDirty {
		epochs = l.epochs.encode()
	}
	l.mu.Unlock()

	err := l.syncFiles(rolled, active, dirDirty)
	if err == nil && epochDirty {
		err = l.writeFileAtomic(epochFile, epochs)
	}
	if err == nil && len(rolled) > 0 {
		err = l.writeFileAtomic(recoveryPointFile, encodeOffsetCheckpoint(active.base))
	}
	if err != nil {
		l.failSyncs(err)
		return err
	}
	if len(rolled) > 0 {
		l.mu.Lock()
		l.unflushed = l.unflushed[len(rolled):]
		l.mu.Unlock()
		for _, s := range rolled {
			s.closeIndexFiles()
			s.unref()
		}
	}
	l.releaseSyncs(target)
	return nil
}

// syncFiles fsyncs rolled segments (log and indexes), the active log and,
// if asked, the directory.
func (l *Log) syncFiles(rolled []*segment, active *segment, dir bool) error {
	for _, s := range rolled {
		if err := errors.Join(l.fsync(s.f), l.fsync(s.idxF), l.fsync(s.timF)); err != nil {
			return fmt.Errorf("fsync segment %d: %w", s.base, err)
		}
	}
	if err := l.fsync(active.f); err != nil {
		return fmt.Errorf("fsync segment %d: %w", active.base, err)
	}
	if dir {
		if err := l.syncDir(); err != nil {
			return fmt.Errorf("fsync %s: %w", l.dir, err)
		}
	}
	return nil
}

// releaseSyncs moves the durable offset up to target and wakes every waiter
// it covers.
func (l *Log) releaseSyncs(target int64) {
	s := &l.sync
	s.mu.Lock()
	defer s.mu.Unlock()
	s.durable = max(s.durable, target)
	keep := s.waiters[:0]
	for _, w := range s.waiters {
		if w.upTo <= s.durable {
			w.ch <- nil
		} else {
			keep = append(keep, w)
		}
	}
	clear(s.waiters[len(keep):])
	s.waiters = keep
	s.pending.Store(int32(len(keep)))
}

// failSyncs makes err sticky and fails every waiter.
func (l *Log) failSyncs(err error) {
	s := &l.sync
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = fmt.Errorf("storage: fsync failed: %w", err)
	}
	for _, w := range s.waiters {
		w.ch <- s.err
	}
	clear(s.waiters)
	s.waiters = s.waiters[:0]
	s.pending.Store(0)
}

// resetDurable sets the durable offset after TruncateAll, which starts the
// log over (possibly below the old durable offset). Caller holds flushMu.
func (l *Log) resetDurable(off int64) {
	s := &l.sync
	s.mu.Lock()
	s.durable = off
	s.mu.Unlock()
	l.releaseSyncs(off)
}

// closeSyncs marks the log closed for Sync: waiters covered by the final
// durable offset return nil, the rest ErrClosed.
func (l *Log) closeSyncs(final int64, flushed bool) {
	if flushed {
		l.releaseSyncs(final)
	}
	s := &l.sync
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, w := range s.waiters {
		w.ch <- ErrClosed
	}
	clear(s.waiters)
	s.waiters = s.waiters[:0]
	s.pending.Store(0)
}
