package replica

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/chronik-stream/chronik/controlplane/raftnet"
)

// logCacheIdle is how long a group's logCache keeps its entries after the
// group's last append.
const logCacheIdle = 10 * time.Second

// logCache keeps a group's newest Raft entries in memory in front of its
// raft-wal log, as raft.LogCache does (the last len(ring) entries, by
// index). Unlike raft.LogCache it lets entries go once no one needs them:
// a follower's once applied (forget), a leader's once every follower has
// stored them (followerStored), and all but a small newest one once the
// group has been idle for a while.
// raft.LogCache keeps its last entries for as long as the group lives:
// after a burst of large batches, 16 quiet partitions held about 400 MB
// per node. Once a group is idle its followers have applied everything,
// so the entries are read again only for a follower that comes back from
// far behind, which raft-wal serves; except the newest, which the leader
// reads at every commit tick for its term (see releaseIfIdle).
type logCache struct {
	raft.LogStore

	mu        sync.RWMutex
	ring      []*raft.Log // entry i at i % len(ring)
	held      bool        // ring holds an entry stored since the last release
	lastStore atomic.Int64
}

// idleKeepBytes is the largest newest entry an idle group's cache keeps.
// Raft's own entries (no-op, configuration) and small batches fit; a large
// batch is read back from raft-wal at each commit tick instead of holding
// up to a MiB per idle partition.
const idleKeepBytes = 16 << 10

func newLogCache(store raft.LogStore, entries int) *logCache {
	return &logCache{LogStore: store, ring: make([]*raft.Log, entries)}
}

// GetLog implements raft.LogStore.
func (c *logCache) GetLog(idx uint64, l *raft.Log) error {
	c.mu.RLock()
	e := c.ring[idx%uint64(len(c.ring))]
	c.mu.RUnlock()
	if e != nil && e.Index == idx {
		*l = *e
		return nil
	}
	return c.LogStore.GetLog(idx, l)
}

// StoreLog implements raft.LogStore.
func (c *logCache) StoreLog(l *raft.Log) error { return c.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore; entries are cached once stored.
func (c *logCache) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	if err := c.LogStore.StoreLogs(logs); err != nil {
		return fmt.Errorf("store raft entries %d-%d: %w", logs[0].Index, logs[len(logs)-1].Index, err)
	}
	c.mu.Lock()
	for _, l := range logs {
		c.ring[l.Index%uint64(len(c.ring))] = l
	}
	c.held = true
	c.mu.Unlock()
	c.lastStore.Store(time.Now().UnixNano())
	return nil
}

// DeleteRange implements raft.LogStore; it empties the cache, as
// raft.LogCache does.
func (c *logCache) DeleteRange(min, max uint64) error {
	c.empty()
	return c.LogStore.DeleteRange(min, max)
}

// IsMonotonic implements raft.MonotonicLogStore.
func (c *logCache) IsMonotonic() bool { return monotonic(c.LogStore) }

// forget drops entry idx. A follower forgets each entry once it is
// applied: Raft reads a follower's entries only to apply them (and, should
// it become leader, for a follower behind it, which raft-wal serves), and
// a follower's entries pin the whole frame they arrived in.
func (c *logCache) forget(idx uint64) {
	slot := &c.ring[idx%uint64(len(c.ring))]
	c.mu.Lock()
	if e := *slot; e != nil && e.Index == idx {
		*slot = nil
	}
	c.mu.Unlock()
}

// forgetThrough drops every entry up to idx.
func (c *logCache) forgetThrough(idx uint64) {
	c.mu.Lock()
	for i, e := range c.ring {
		if e != nil && e.Index <= idx {
			c.ring[i] = nil
		}
	}
	c.mu.Unlock()
}

// followerStores is what a leader has heard of the entries its followers
// stored, in one term.
type followerStores struct {
	mu   sync.Mutex
	term uint64
	last map[int32]uint64 // by node id
}

// followerStored records a follower's successful AppendEntries answer and
// lets the cache forget the entries every other member of the group has
// stored, but the last: a leader reads its entries only to send them (and
// the one before, for its term), so those are read again only when a
// follower asks for them once more (a send that failed, a follower whose
// log was cut back), and then raft-wal serves them. Until the reporter has
// read the group's members in this term, nothing is forgotten.
func (g *group) followerStored(s raftnet.Stored) {
	mv := g.members.Load()
	from, ok := nodeID(s.ID)
	if mv == nil || mv.term != s.Term || !ok {
		return
	}
	fs := &g.stores
	fs.mu.Lock()
	if fs.term != s.Term {
		fs.term, fs.last = s.Term, map[int32]uint64{}
	}
	fs.last[from] = max(fs.last[from], s.Last)
	low, others := uint64(math.MaxUint64), 0
	for _, id := range mv.ids {
		if id != g.rr.cfg.NodeID {
			low = min(low, fs.last[id])
			others++
		}
	}
	fs.mu.Unlock()
	if others > 0 && low > 1 {
		// Raft reads the entry before the next one it sends, for its term.
		g.cache.forgetThrough(low - 1)
	}
}

// releaseIfIdle empties the cache when nothing was stored for idle, but
// for its newest entry if that is small. An idle leader's replication
// sends each follower an empty AppendEntries at every commit tick, and
// Raft reads the entry before the next one to send, the newest, for its
// term: without it every tick read raft-wal from disk (about 450 reads a
// second on a broker leading a third of 1000 partitions).
func (c *logCache) releaseIfIdle(now time.Time, idle time.Duration) {
	if now.Sub(time.Unix(0, c.lastStore.Load())) < idle {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.held {
		return
	}
	var newest *raft.Log
	for _, e := range c.ring {
		if e != nil && (newest == nil || e.Index > newest.Index) {
			newest = e
		}
	}
	clear(c.ring)
	c.held = false
	if newest != nil && len(newest.Data)+len(newest.Extensions) <= idleKeepBytes {
		c.ring[newest.Index%uint64(len(c.ring))] = newest
	}
}

func (c *logCache) empty() {
	c.mu.Lock()
	clear(c.ring)
	c.held = false
	c.mu.Unlock()
}
