package group

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"
	"unicode/utf16"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Errors of Load.
var (
	ErrStopped  = errors.New("group: coordinator stopped")
	ErrUnloaded = errors.New("group: partition unloaded while loading")
)

// OffsetLog is the __consumer_offsets topic as the coordinator sees it.
type OffsetLog interface {
	// Append durably writes one record batch (acks=-1 semantics; in
	// cluster mode committed by Raft) to partition p and returns when done.
	Append(ctx context.Context, p int32, batch []byte) error
	// Read returns whole record batches of partition p from offset, up to
	// its high watermark, at most about maxBytes (at least one batch).
	Read(p int32, offset int64, maxBytes int) ([]byte, error)
	// Bounds returns the partition's log start offset and high watermark.
	Bounds(p int32) (start, hwm int64, err error)
	// DeleteRecords moves the log start offset of p forward.
	DeleteRecords(ctx context.Context, p int32, offset int64) error
}

// Config configures a Coordinator. Zero durations and sizes take Kafka's
// defaults.
type Config struct {
	Logger        *slog.Logger
	Log           OffsetLog
	NumPartitions int32 // of __consumer_offsets
	// TopicExists validates OffsetCommit and OffsetDelete partitions.
	TopicExists func(topic string, partition int32) bool
	// OffsetsRetention is offsets.retention.minutes (default 7 days).
	OffsetsRetention time.Duration
	// OffsetsRetentionCheck is offsets.retention.check.interval.ms
	// (default 10 minutes).
	OffsetsRetentionCheck time.Duration
	// Now is the clock (tests); default time.Now.
	Now func() time.Time

	// MinSessionTimeout and MaxSessionTimeout bound members' session
	// timeouts (group.min/max.session.timeout.ms, default 6 s and 30 min).
	MinSessionTimeout, MaxSessionTimeout time.Duration
	// InitialRebalanceDelay is group.initial.rebalance.delay.ms (default
	// 3 s); a negative value disables it.
	InitialRebalanceDelay time.Duration
	// MaxMetadataBytes is offset.metadata.max.bytes (default 4096).
	MaxMetadataBytes int
	// MaxMemberMetadataBytes caps one member's protocol metadata and its
	// assignment (default 1 MiB).
	MaxMemberMetadataBytes int
	// CheckpointBytes is how much a partition's log may grow before its
	// live state is written again and the old records dropped (default
	// 16 MiB, or the size of the last checkpoint when that is larger).
	CheckpointBytes int64
	// MaxBatchBytes caps one appended record batch (default 512 KiB).
	MaxBatchBytes int
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.NumPartitions <= 0 {
		c.NumPartitions = 50
	}
	if c.TopicExists == nil {
		c.TopicExists = func(string, int32) bool { return true }
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.OffsetsRetention, 7*24*time.Hour)
	def(&c.OffsetsRetentionCheck, 10*time.Minute)
	def(&c.MinSessionTimeout, 6*time.Second)
	def(&c.MaxSessionTimeout, 30*time.Minute)
	def(&c.InitialRebalanceDelay, 3*time.Second)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxMetadataBytes <= 0 || c.MaxMetadataBytes > maxString {
		c.MaxMetadataBytes = 4096
	}
	if c.MaxMemberMetadataBytes <= 0 {
		c.MaxMemberMetadataBytes = 1 << 20
	}
	if c.CheckpointBytes <= 0 {
		c.CheckpointBytes = 16 << 20
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = 512 << 10
	}
}

// Coordinator is the classic group coordinator for the __consumer_offsets
// partitions this node leads.
//
// Lock order: a partition writer takes no lock while it appends; every
// piece of group state is guarded by mu, which is never held across I/O.
type Coordinator struct {
	cfg Config
	log *slog.Logger

	// base is the lifetime of partition writers: cancelled when Run ends.
	base     context.Context
	stopBase context.CancelFunc
	writers  sync.WaitGroup

	mu      sync.Mutex
	stopped bool
	parts   map[int32]*logPart
	timers  timerHeap
	wake    chan struct{}
}

// New returns a coordinator with nothing loaded. Run must be called for
// its timers and writers to work; Load makes it coordinator of a partition.
func New(cfg Config) *Coordinator {
	cfg.setDefaults()
	base, stop := context.WithCancel(context.Background())
	return &Coordinator{
		cfg: cfg, log: cfg.Logger.With("component", "groups"),
		base: base, stopBase: stop,
		parts: map[int32]*logPart{}, wake: make(chan struct{}, 1),
	}
}

// PartitionFor returns the __consumer_offsets partition of group among n,
// as Kafka computes it: abs(String.hashCode) mod n.
func PartitionFor(group string, n int32) int32 {
	if n <= 0 {
		return 0
	}
	var h int32
	for _, u := range utf16.Encode([]rune(group)) {
		h = 31*h + int32(u)
	}
	switch {
	case h == math.MinInt32:
		h = 0
	case h < 0:
		h = -h
	}
	return h % n
}

func (c *Coordinator) now() time.Time { return c.cfg.Now() }

// Run fires session, rebalance and sync timeouts and expires offsets until
// ctx ends; then it unloads every partition, answers every waiting member
// and returns once the partition writers have stopped.
func (c *Coordinator) Run(ctx context.Context) error {
	defer func() {
		c.mu.Lock()
		c.stopped = true
		ids := make([]int32, 0, len(c.parts))
		for id := range c.parts {
			ids = append(ids, id)
		}
		c.mu.Unlock()
		for _, id := range ids {
			c.Unload(id)
		}
		c.stopBase()
		c.writers.Wait()
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	retention := time.NewTicker(c.cfg.OffsetsRetentionCheck)
	defer retention.Stop()
	for {
		c.mu.Lock()
		next, ok := c.timers.peek()
		c.mu.Unlock()
		timer.Stop()
		if ok {
			timer.Reset(max(next.Sub(c.now()), 0))
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.wake:
		case <-timer.C:
			c.fireTimers()
		case <-retention.C:
			c.ExpireOffsets()
		}
	}
}

// newMemberID makes a member id the way Kafka does: the client id (or the
// instance id of a static member), a dash and a random UUID.
func newMemberID(prefix string) string {
	if len(prefix) > 1024 {
		prefix = prefix[:1024]
	}
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return fmt.Sprintf("%s-%s-%s-%s-%s-%s", prefix, h[0:8], h[8:12], h[12:16], h[16:20], h[20:])
}

// partLocked finds the loaded partition of a group id, or the Kafka error
// that tells the client to look elsewhere. Caller holds c.mu.
func (c *Coordinator) partLocked(id string) (*logPart, int16) {
	if id == "" || len(id) > maxString {
		return nil, kerr.InvalidGroupID.Code
	}
	p := c.parts[PartitionFor(id, c.cfg.NumPartitions)]
	switch {
	case p == nil:
		return nil, kerr.NotCoordinator.Code
	case !p.loaded:
		return nil, kerr.CoordinatorLoadInProgress.Code
	}
	return p, 0
}

// lookupLocked returns the group of a request (nil when it does not exist)
// or the error code for its partition. Caller holds c.mu.
func (c *Coordinator) lookupLocked(id string) (*logPart, *group, int16) {
	p, code := c.partLocked(id)
	if code != 0 {
		return nil, nil, code
	}
	return p, p.groups[id], 0
}

func (c *Coordinator) createLocked(p *logPart, id string) *group {
	g := newGroup(id, p.id, c.now())
	p.groups[id] = g
	return g
}

// maybeDropLocked forgets a group that holds nothing any more. Caller
// holds c.mu.
func (c *Coordinator) maybeDropLocked(g *group) {
	if g.gone || g.state != Empty || len(g.members) > 0 || len(g.pending) > 0 ||
		len(g.offsets) > 0 || g.metadata != nil || g.inflight > 0 {
		return
	}
	g.gone = true
	g.state = Dead
	if p := c.parts[g.part]; p != nil && p.groups[g.id] == g {
		delete(p.groups, g.id)
	}
}

// dropLocked removes a group from memory, answering its waiting members
// with code. Caller holds c.mu.
func (c *Coordinator) dropLocked(g *group, code int16) {
	for _, m := range g.members {
		m.answerJoin(JoinResult{ErrorCode: code, MemberID: m.id, Generation: -1})
		m.answerSync(SyncResult{ErrorCode: code})
	}
	g.gone = true
	g.state = Dead
}

// timerItem asks to check group g at time at.
type timerItem struct {
	at time.Time
	g  *group
}

type timerHeap []timerItem

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timerItem)) }
func (h *timerHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func (h timerHeap) peek() (time.Time, bool) {
	if len(h) == 0 {
		return time.Time{}, false
	}
	return h[0].at, true
}

// scheduleLocked makes sure the group is checked at its next deadline.
// Later deadlines (heartbeats) need no new timer: the check at the earlier
// one finds nothing due and schedules again. Caller holds c.mu.
func (c *Coordinator) scheduleLocked(g *group) {
	at := g.nextDeadline()
	if g.gone || at.IsZero() || !g.scheduled.IsZero() && !at.Before(g.scheduled) {
		return
	}
	g.scheduled = at
	top, ok := c.timers.peek()
	heap.Push(&c.timers, timerItem{at: at, g: g})
	if !ok || at.Before(top) {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// fireTimers runs every check that is due.
func (c *Coordinator) fireTimers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for len(c.timers) > 0 && !c.timers[0].at.After(now) {
		it := heap.Pop(&c.timers).(timerItem)
		g := it.g
		if g.gone {
			continue
		}
		if it.at.Equal(g.scheduled) {
			g.scheduled = time.Time{}
		}
		c.checkLocked(g, now)
		c.scheduleLocked(g)
	}
}

// checkLocked expires what is due in g: pending member ids, member
// sessions, the join phase and the sync phase. Caller holds c.mu.
func (c *Coordinator) checkLocked(g *group, now time.Time) {
	for id, t := range g.pending {
		if !t.After(now) {
			delete(g.pending, id)
			c.log.Debug("pending member expired", "group", g.id, "member", id)
			c.maybeCompleteJoinLocked(g)
		}
	}
	for _, m := range g.sortedMembers() {
		if g.gone || g.members[m.id] != m || m.keepAlive() || m.deadline.After(now) {
			continue
		}
		c.log.Info("member session expired", "group", g.id, "member", m.id, "generation", g.generation)
		c.removeMemberLocked(g, m, kerr.UnknownMemberID.Code)
	}
	if g.state == PreparingRebalance && !g.joinDeadline.After(now) {
		c.joinDeadlineLocked(g)
	}
	if len(g.pendingSync) > 0 && (g.state == CompletingRebalance || g.state == Stable) && !g.syncDeadline.After(now) {
		late := make([]*member, 0, len(g.pendingSync))
		for _, m := range g.sortedMembers() {
			if g.pendingSync[m.id] {
				late = append(late, m)
			}
		}
		clear(g.pendingSync)
		for _, m := range late {
			if g.members[m.id] == m {
				c.log.Info("member did not sync in time", "group", g.id, "member", m.id, "generation", g.generation)
				c.removeMemberLocked(g, m, kerr.RebalanceInProgress.Code)
			}
		}
	}
}
