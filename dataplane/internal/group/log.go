package group

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// readChunk is how much Load reads from the log at a time.
const readChunk = 1 << 20

// logPart is one __consumer_offsets partition this node coordinates: its
// groups and the writer that appends their records in order.
type logPart struct {
	id     int32
	loaded bool // false while Load replays the log
	groups map[string]*group

	ctx    context.Context // ends at Unload
	cancel context.CancelFunc
	done   chan struct{} // closed when the writer has stopped

	queue []*write // guarded by Coordinator.mu
	kick  chan struct{}

	// Owned by the writer: bytes appended since the last checkpoint and
	// the size of that checkpoint.
	sinceCheckpoint int64
	lastCheckpoint  int64
}

// write is a set of records to append as a unit. apply runs under
// Coordinator.mu once the append is done (err nil) or has failed, in log
// order, and brings memory in line with the log.
type write struct {
	recs  []kv
	apply func(err error)
}

func (w *write) size() int {
	n := 0
	for _, r := range w.recs {
		n += r.size()
	}
	return n
}

// enqueueLocked hands w to the partition writer. Caller holds c.mu.
func (c *Coordinator) enqueueLocked(p *logPart, w *write) {
	p.queue = append(p.queue, w)
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// writeCode maps a failed append to what Kafka answers: the client should
// find the coordinator again.
func (c *Coordinator) writeCode(p *logPart, err error) int16 {
	switch {
	case err == nil:
		return 0
	case p.ctx.Err() != nil:
		return kerr.NotCoordinator.Code
	default:
		return kerr.CoordinatorNotAvailable.Code
	}
}

// runWriter appends queued writes in order, batching what has queued up
// meanwhile, and checkpoints when the log has grown enough.
func (c *Coordinator) runWriter(p *logPart) {
	defer c.writers.Done()
	defer close(p.done)
	for {
		select {
		case <-p.ctx.Done():
			c.mu.Lock()
			ws := p.queue
			p.queue = nil
			for _, w := range ws {
				w.apply(p.ctx.Err())
			}
			c.mu.Unlock()
			return
		case <-p.kick:
		}
		for {
			c.mu.Lock()
			ws := p.queue
			p.queue = nil
			c.mu.Unlock()
			if len(ws) == 0 {
				break
			}
			c.flush(p, ws)
		}
		c.maybeCheckpoint(p)
	}
}

// flush appends writes as few batches as MaxBatchBytes allows, never
// splitting a write, and applies each in order.
func (c *Coordinator) flush(p *logPart, ws []*write) {
	for len(ws) > 0 {
		n, size := 0, 0
		for n < len(ws) && (n == 0 || size+ws[n].size() <= c.cfg.MaxBatchBytes) {
			size += ws[n].size()
			n++
		}
		chunk := ws[:n]
		ws = ws[n:]
		var recs []kv
		for _, w := range chunk {
			recs = append(recs, w.recs...)
		}
		err := c.append(p, recs)
		if err != nil && p.ctx.Err() == nil {
			c.log.Warn("append to offsets log", "partition", p.id, "err", err)
		}
		c.mu.Lock()
		for _, w := range chunk {
			w.apply(err)
		}
		c.mu.Unlock()
	}
}

// append writes recs as one batch, or none when recs is empty.
func (c *Coordinator) append(p *logPart, recs []kv) error {
	if len(recs) == 0 {
		return nil
	}
	b := appendBatch(nil, recs, c.now().UnixMilli())
	if err := c.cfg.Log.Append(p.ctx, p.id, b); err != nil {
		return fmt.Errorf("append to offsets partition %d: %w", p.id, err)
	}
	p.sinceCheckpoint += int64(len(b))
	return nil
}

// maybeCheckpoint writes the partition's live state again as fresh records
// and moves the log start past everything before them, once the log has
// grown by CheckpointBytes (or by the last checkpoint's size, if larger)
// since the last checkpoint. Only the writer appends, so the state in
// memory is exactly what the log holds up to its high watermark.
func (c *Coordinator) maybeCheckpoint(p *logPart) {
	if p.sinceCheckpoint < max(c.cfg.CheckpointBytes, p.lastCheckpoint) {
		return
	}
	_, hwm, err := c.cfg.Log.Bounds(p.id)
	if err != nil {
		c.log.Warn("checkpoint offsets log", "partition", p.id, "err", err)
		return
	}
	c.mu.Lock()
	recs := c.snapshotLocked(p)
	c.mu.Unlock()
	written, size := 0, 0
	for len(recs) > 0 {
		n, bytes := 0, 0
		for n < len(recs) && (n == 0 || bytes+recs[n].size() <= c.cfg.MaxBatchBytes) {
			bytes += recs[n].size()
			n++
		}
		b := appendBatch(nil, recs[:n], c.now().UnixMilli())
		if err := c.cfg.Log.Append(p.ctx, p.id, b); err != nil {
			c.log.Warn("checkpoint offsets log", "partition", p.id, "err", err)
			return
		}
		recs = recs[n:]
		written += n
		size += len(b)
	}
	if err := c.cfg.Log.DeleteRecords(p.ctx, p.id, hwm); err != nil {
		c.log.Warn("checkpoint offsets log: delete records", "partition", p.id, "offset", hwm, "err", err)
		return
	}
	c.log.Info("checkpointed offsets log", "partition", p.id, "records", written, "bytes", size, "log_start", hwm)
	p.sinceCheckpoint, p.lastCheckpoint = 0, int64(size)
}

// snapshotLocked returns the records that rebuild the partition's
// persisted state. Caller holds c.mu.
func (c *Coordinator) snapshotLocked(p *logPart) []kv {
	ids := make([]string, 0, len(p.groups))
	for id := range p.groups {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var recs []kv
	for _, id := range ids {
		g := p.groups[id]
		if g.metadata != nil {
			recs = append(recs, kv{groupKey(id), g.metadata})
		}
		for _, tp := range sortedTPs(g.offsets) {
			recs = append(recs, kv{offsetKey(id, tp), offsetValue(*g.offsets[tp])})
		}
	}
	return recs
}

func sortedTPs[V any](m map[TopicPartition]V) []TopicPartition {
	tps := make([]TopicPartition, 0, len(m))
	for tp := range m {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
	return tps
}

// Load makes this node the coordinator of partition id: it replays the
// partition's log to rebuild committed offsets and groups, then serves
// them. Requests for its groups get COORDINATOR_LOAD_IN_PROGRESS until it
// returns. Loading a partition that is loaded or loading does nothing.
func (c *Coordinator) Load(ctx context.Context, id int32) error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return ErrStopped
	}
	if c.parts[id] != nil {
		c.mu.Unlock()
		return nil
	}
	pctx, cancel := context.WithCancel(c.base)
	p := &logPart{id: id, groups: map[string]*group{}, ctx: pctx, cancel: cancel,
		done: make(chan struct{}), kick: make(chan struct{}, 1)}
	c.parts[id] = p
	c.mu.Unlock()

	start := time.Now()
	st, read, err := c.replay(ctx, id)

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.parts[id] != p {
		return fmt.Errorf("load offsets partition %d: %w", id, ErrUnloaded)
	}
	if err != nil {
		delete(c.parts, id)
		cancel()
		return fmt.Errorf("load offsets partition %d: %w", id, err)
	}
	now := c.now()
	for gid, rg := range st {
		if g := c.restoreLocked(p, gid, rg, now); g != nil {
			p.groups[gid] = g
			c.scheduleLocked(g)
		}
	}
	p.loaded = true
	p.sinceCheckpoint = read
	c.writers.Add(1)
	go c.runWriter(p)
	c.log.Info("loaded offsets partition", "partition", id, "groups", len(p.groups), "bytes", read, "took", time.Since(start))
	return nil
}

// replayed is what the log says about one group.
type replayed struct {
	offsets  map[TopicPartition]*committed
	meta     *kmsg.GroupMetadataValue
	metadata []byte
}

// replay reads partition id from its log start to its high watermark.
func (c *Coordinator) replay(ctx context.Context, id int32) (map[string]*replayed, int64, error) {
	start, hwm, err := c.cfg.Log.Bounds(id)
	if err != nil {
		return nil, 0, fmt.Errorf("bounds: %w", err)
	}
	st := map[string]*replayed{}
	get := func(gid string) *replayed {
		rg := st[gid]
		if rg == nil {
			rg = &replayed{offsets: map[TopicPartition]*committed{}}
			st[gid] = rg
		}
		return rg
	}
	apply := func(e entry) {
		rg := get(e.group)
		switch {
		case e.isOffset && e.offset == nil:
			delete(rg.offsets, e.tp)
		case e.isOffset:
			rg.offsets[e.tp] = e.offset
		default:
			rg.meta, rg.metadata = e.meta, e.raw
		}
	}
	var read int64
	skipped := 0
	for off := start; off < hwm; {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		data, err := c.cfg.Log.Read(id, off, readChunk)
		if err != nil {
			return nil, 0, fmt.Errorf("read offset %d: %w", off, err)
		}
		if len(data) == 0 {
			break
		}
		next, n, err := decodeBatches(data, apply)
		skipped += n
		if err != nil {
			return nil, 0, fmt.Errorf("replay from offset %d: %w", off, err)
		}
		if next <= off {
			return nil, 0, fmt.Errorf("replay from offset %d: %w: no progress", off, errCorrupt)
		}
		read += int64(len(data))
		off = next
	}
	if skipped > 0 {
		c.log.Warn("skipped undecodable offsets log records", "partition", id, "records", skipped)
	}
	return st, read, nil
}

// restoreLocked rebuilds a group from its replayed records: Empty when the
// last metadata had no members, otherwise Stable with those members, whose
// sessions start now. Caller holds c.mu.
func (c *Coordinator) restoreLocked(p *logPart, gid string, rg *replayed, now time.Time) *group {
	if len(rg.offsets) == 0 && rg.meta == nil {
		return nil
	}
	g := newGroup(gid, p.id, now)
	g.offsets = rg.offsets
	if rg.meta == nil {
		return g
	}
	v := rg.meta
	g.metadata = rg.metadata
	g.protocolType, g.generation = v.ProtocolType, v.Generation
	if v.Protocol != nil {
		g.protocol = *v.Protocol
	}
	if v.CurrentStateTimestamp > 0 {
		g.stateTime = time.UnixMilli(v.CurrentStateTimestamp)
	}
	for _, vm := range v.Members {
		m := &member{id: vm.MemberID, clientID: vm.ClientID, host: vm.ClientHost,
			sessionTimeout:   time.Duration(vm.SessionTimeoutMillis) * time.Millisecond,
			rebalanceTimeout: time.Duration(vm.RebalanceTimeoutMillis) * time.Millisecond,
			protocols:        []Protocol{{Name: g.protocol, Metadata: vm.Subscription}},
			assignment:       vm.Assignment}
		if vm.InstanceID != nil && *vm.InstanceID != "" {
			m.instance = *vm.InstanceID
			g.static[m.instance] = m.id
		}
		if m.rebalanceTimeout <= 0 {
			m.rebalanceTimeout = m.sessionTimeout
		}
		g.seq++
		m.seq = g.seq
		m.deadline = now.Add(m.sessionTimeout)
		g.members[m.id] = m
	}
	if len(g.members) > 0 {
		g.state = Stable
		if v.Leader != nil && g.members[*v.Leader] != nil {
			g.leader = *v.Leader
		} else {
			g.leader = g.sortedMembers()[0].id
		}
	}
	return g
}

// Unload stops coordinating partition id: its groups are dropped from
// memory and their waiting members get NOT_COORDINATOR. It returns once the
// partition's writer has stopped.
func (c *Coordinator) Unload(id int32) {
	c.mu.Lock()
	p := c.parts[id]
	if p == nil {
		c.mu.Unlock()
		return
	}
	delete(c.parts, id)
	for _, g := range p.groups {
		c.dropLocked(g, kerr.NotCoordinator.Code)
	}
	started := p.loaded
	c.mu.Unlock()
	p.cancel()
	if started {
		<-p.done
	}
	c.log.Info("unloaded offsets partition", "partition", id)
}

// Loaded reports whether partition id is loaded here.
func (c *Coordinator) Loaded(id int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.parts[id]
	return p != nil && p.loaded
}
