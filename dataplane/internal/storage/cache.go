package storage

// The page cache behind the tail.
//
// Every appended byte lands in the page cache, and by default the kernel
// keeps it there until memory runs short. On a machine that gives free
// memory back to its host, or whose memory is full of other data, each new
// page then costs a fault or a reclaim: measured here, the kernel's copy
// into fresh pages was half of all CPU under a 1 KiB produce load, and
// writing into pages the log had just handed back took about a third of
// the time. Consumers read almost only near the end of a partition, so the
// log keeps the last CachedTailBytes of it cached and hands older pages
// back once they are on disk. A consumer further behind reads from disk,
// as it would once the kernel had evicted those pages anyway.
//
// The flusher goroutine does the work (releaseCache), woken by Append each
// time the active segment grows by a quarter of the tail. Handing back
// pages never loses data: the kernel drops only clean pages, and the range
// is written out first.

import "os"

// DefaultCachedTailBytes is how much of a log's end stays cached unless
// Config says otherwise.
//
// A page stays cached until the log has written this much after it, so
// the slower a log is written, the longer its pages sit untouched before
// they are handed back and reused; on the 2-core virtual machine measured,
// pages left alone for seconds were the costly ones to write into again.
// Three nodes with 16 partitions each (4 franz-go producers of 1 KiB
// records, acks=all, replication factor 3, about 12 MB/s into each
// partition log) produced 1.2-2.1x as fast with 16 MiB as with 64 MiB,
// and about as fast as with 1 to 8 MiB; one node with 1 or 16 partitions
// (30-800 MB/s into each log) was within 7% of its speed with 64 MiB,
// either way. Runs alternated; idle pages cached for another file (3 GiB)
// made no difference.
const DefaultCachedTailBytes = 16 << 20

// cacheState is the flusher's record of what it has handed back.
type cacheState struct {
	wake chan struct{} // capacity 1: the tail moved on
	// The oldest segment that may still hold cached pages behind the
	// tail, by base offset, and how far into it pages were handed back.
	// Owned by the flusher goroutine.
	base int64
	from int64
}

// releaseStep is how much the active segment grows between two wake-ups
// of the flusher for releaseCache; 0 when the log keeps everything.
func releaseStep(cfg *Config) int64 {
	if cfg.CachedTailBytes <= 0 {
		return 0
	}
	return max(cfg.CachedTailBytes/4, pageSize)
}

// pageSize is the unit of the page cache.
var pageSize = int64(os.Getpagesize())

// maxFolio is the largest piece in which the kernel may cache a file (a
// huge page). It drops only pieces that lie wholly inside the range it is
// given, so each range starts this far before the previous one ended: a
// piece across that boundary would otherwise stay cached for good.
const maxFolio = 2 << 20

func (l *Log) wakeReleaser() {
	select {
	case l.cache.wake <- struct{}{}:
	default:
	}
}

// releaseCache hands back the pages that lie more than CachedTailBytes
// behind the log's end: first every segment before the active one (once
// the active one holds the whole tail), then the active segment up to the
// tail. Runs on the flusher goroutine.
func (l *Log) releaseCache() {
	keep := l.cfg.Load().CachedTailBytes
	if keep <= 0 {
		return
	}
	c := &l.cache
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return
	}
	active := l.segs[len(l.segs)-1]
	activeSize := active.size
	if c.base > active.base { // truncated behind the segment we were in
		c.base, c.from = active.base, 0
	}
	var older []*segment
	var sizes []int64
	if activeSize >= keep {
		// Newest first, down to the one the last round stopped in: a log
		// of many segments costs a round only those it has not released.
		for i := len(l.segs) - 2; i >= 0 && l.segs[i].base >= c.base; i-- {
			s := l.segs[i]
			s.ref()
			older, sizes = append(older, s), append(sizes, s.size)
		}
	}
	active.ref()
	l.mu.RUnlock()
	defer active.unref()

	for i, s := range older {
		from := int64(0)
		if s.base == c.base {
			from = max(c.from-maxFolio, 0)
		}
		releasePages(s.f, from, sizes[i]+maxFolio-from)
		s.unref()
	}
	if c.base != active.base {
		if activeSize < keep {
			return // the previous segment still holds part of the tail
		}
		c.base, c.from = active.base, 0
	}
	c.from = min(c.from, activeSize/pageSize*pageSize) // truncated back
	if upTo := (activeSize - keep) / pageSize * pageSize; upTo > c.from {
		from := max(c.from-maxFolio, 0)
		releasePages(active.f, from, upTo-from)
		c.from = upTo
	}
}
