package group

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// OffsetCommit is one partition's offset to commit.
type OffsetCommit struct {
	Topic       string
	Partition   int32
	Offset      int64
	LeaderEpoch int32 // -1 when unknown
	Metadata    string
}

// CommitRequest is an OffsetCommit request.
type CommitRequest struct {
	Group      string
	Generation int32 // -1 for a commit outside group management
	MemberID   string
	InstanceID string
	// Retention is OffsetCommit v2-v4's retention time; zero or negative
	// leaves expiry to offsets.retention.minutes.
	Retention time.Duration
	Offsets   []OffsetCommit
}

// FetchedOffset is one partition's committed offset, or -1.
type FetchedOffset struct {
	Topic       string
	Partition   int32
	Offset      int64
	LeaderEpoch int32
	Metadata    string
	ErrorCode   int16
}

// CommitOffsets handles OffsetCommit: it returns once the offsets are
// durable (or failed), one code per requested offset.
func (c *Coordinator) CommitOffsets(ctx context.Context, r CommitRequest) []int16 {
	codes := make([]int16, len(r.Offsets))
	fill := func(code int16) []int16 {
		for i := range codes {
			if codes[i] == 0 {
				codes[i] = code
			}
		}
		return codes
	}
	c.mu.Lock()
	p, g, code := c.lookupLocked(r.Group)
	if code == 0 {
		g, code = c.commitCheckLocked(p, g, r)
	}
	if code != 0 {
		c.mu.Unlock()
		return fill(code)
	}
	now := c.now()
	var recs []kv
	var idx []int
	var tps []TopicPartition
	var vals []committed
	for i, o := range r.Offsets {
		switch {
		case !c.cfg.TopicExists(o.Topic, o.Partition):
			codes[i] = kerr.UnknownTopicOrPartition.Code
		case len(o.Metadata) > c.cfg.MaxMetadataBytes:
			codes[i] = kerr.OffsetMetadataTooLarge.Code
		default:
			tp := TopicPartition{o.Topic, o.Partition}
			v := committed{Offset: o.Offset, LeaderEpoch: o.LeaderEpoch, Metadata: o.Metadata, CommitTime: now.UnixMilli()}
			if r.Retention > 0 {
				v.ExpireTime = now.Add(r.Retention).UnixMilli()
			}
			recs = append(recs, kv{offsetKey(g.id, tp), offsetValue(v)})
			idx, tps, vals = append(idx, i), append(tps, tp), append(vals, v)
			g.pendingCommits[tp]++
		}
	}
	if len(recs) == 0 {
		c.maybeDropLocked(g)
		c.mu.Unlock()
		return codes
	}
	done := make(chan int16, 1)
	g.inflight++
	c.enqueueLocked(p, &write{recs: recs, apply: func(err error) {
		g.inflight--
		for i, tp := range tps {
			if g.pendingCommits[tp]--; g.pendingCommits[tp] <= 0 {
				delete(g.pendingCommits, tp)
			}
			if err == nil && !g.gone {
				g.offsets[tp] = &vals[i]
			}
		}
		done <- c.writeCode(p, err)
		c.maybeDropLocked(g)
	}})
	c.mu.Unlock()
	select {
	case code = <-done:
	case <-ctx.Done():
		code = kerr.RequestTimedOut.Code
	}
	for _, i := range idx {
		codes[i] = code
	}
	return codes
}

// commitCheckLocked applies Kafka's rules for who may commit: anyone with
// generation -1 to a group without members (creating it if needed), and
// otherwise a current member of the current generation, which counts as a
// heartbeat. Caller holds c.mu.
func (c *Coordinator) commitCheckLocked(p *logPart, g *group, r CommitRequest) (*group, int16) {
	if g == nil {
		if r.Generation < 0 {
			return c.createLocked(p, r.Group), 0
		}
		return nil, kerr.IllegalGeneration.Code
	}
	switch {
	case g.state == Dead:
		return nil, kerr.CoordinatorNotAvailable.Code
	case g.fenced(r.InstanceID, r.MemberID):
		return nil, kerr.FencedInstanceID.Code
	case r.Generation < 0 && g.state == Empty:
		return g, 0
	case g.state == CompletingRebalance:
		return nil, kerr.RebalanceInProgress.Code
	case g.members[r.MemberID] == nil:
		return nil, kerr.UnknownMemberID.Code
	case r.Generation != g.generation:
		return nil, kerr.IllegalGeneration.Code
	}
	m := g.members[r.MemberID]
	m.deadline = c.now().Add(m.sessionTimeout)
	return g, 0
}

// FetchOffsets handles OffsetFetch for one group: the offsets of tps, or
// of every committed partition when tps is nil.
func (c *Coordinator) FetchOffsets(group string, tps []TopicPartition) (int16, []FetchedOffset) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, g, code := c.lookupLocked(group)
	if code != 0 {
		return code, nil
	}
	var offsets map[TopicPartition]*committed
	if g != nil {
		offsets = g.offsets
	}
	if tps == nil {
		tps = sortedTPs(offsets)
	}
	out := make([]FetchedOffset, 0, len(tps))
	for _, tp := range tps {
		f := FetchedOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: -1, LeaderEpoch: -1}
		if o := offsets[tp]; o != nil {
			f.Offset, f.LeaderEpoch, f.Metadata = o.Offset, o.LeaderEpoch, o.Metadata
		}
		out = append(out, f)
	}
	return 0, out
}

// DeleteOffsets handles OffsetDelete: a group-level code and one code per
// partition. Offsets of topics that members of a non-empty consumer group
// subscribe to are kept (GROUP_SUBSCRIBED_TO_TOPIC).
func (c *Coordinator) DeleteOffsets(ctx context.Context, group string, tps []TopicPartition) (int16, []int16) {
	codes := make([]int16, len(tps))
	c.mu.Lock()
	p, g, code := c.lookupLocked(group)
	if code == 0 && (g == nil || g.state == Dead) {
		code = kerr.GroupIDNotFound.Code
	}
	if code != 0 {
		c.mu.Unlock()
		return code, codes
	}
	var subscribed map[string]bool
	if g.state != Empty {
		topics, ok := g.subscribedTopics()
		if !ok && g.protocolType != consumerProtocol {
			c.mu.Unlock()
			return kerr.NonEmptyGroup.Code, codes
		}
		subscribed = topics
		if !ok {
			subscribed = nil // unknown subscriptions: keep everything
		}
	}
	var doomed []TopicPartition
	for i, tp := range tps {
		switch {
		case !c.cfg.TopicExists(tp.Topic, tp.Partition):
			codes[i] = kerr.UnknownTopicOrPartition.Code
		case g.state != Empty && (subscribed == nil || subscribed[tp.Topic]):
			codes[i] = kerr.GroupSubscribedToTopic.Code
		default:
			doomed = append(doomed, tp)
		}
	}
	done := c.removeOffsetsLocked(p, g, doomed)
	c.mu.Unlock()
	if done == nil {
		return 0, codes
	}
	select {
	case code = <-done:
	case <-ctx.Done():
		code = kerr.RequestTimedOut.Code
	}
	return code, codes
}

// removeOffsetsLocked writes tombstones for the committed offsets among
// tps and, if that leaves an Empty group with nothing, for the group too;
// memory follows once they are written. It returns nil when there is
// nothing to write. Caller holds c.mu.
func (c *Coordinator) removeOffsetsLocked(p *logPart, g *group, tps []TopicPartition) chan int16 {
	var recs []kv
	var gone []TopicPartition
	for _, tp := range tps {
		if g.offsets[tp] != nil || g.pendingCommits[tp] > 0 {
			recs = append(recs, kv{key: offsetKey(g.id, tp)})
			gone = append(gone, tp)
		}
	}
	if len(recs) == 0 {
		return nil
	}
	removed := map[TopicPartition]bool{}
	for _, tp := range gone {
		removed[tp] = true
	}
	left := 0
	for tp := range g.offsets {
		if !removed[tp] {
			left++
		}
	}
	dropGroup := g.state == Empty && left == 0 && len(g.pendingCommits) == 0 && g.metadata != nil
	if dropGroup {
		recs = append(recs, kv{key: groupKey(g.id)})
	}
	done := make(chan int16, 1)
	g.inflight++
	c.enqueueLocked(p, &write{recs: recs, apply: func(err error) {
		g.inflight--
		if err == nil {
			for _, tp := range gone {
				delete(g.offsets, tp)
			}
			if dropGroup {
				g.metadata = nil
			}
		}
		done <- c.writeCode(p, err)
		c.maybeDropLocked(g)
	}})
	return done
}

// ExpireOffsets removes committed offsets past retention, as Kafka does
// (KIP-211): the offsets of an Empty group once it has been empty for
// OffsetsRetention; of a group outside group management, each
// OffsetsRetention after its commit; of a Stable consumer group, those of
// topics no member subscribes to any more, OffsetsRetention after their
// commit. Offsets committed with an explicit retention expire at their own
// time. A group left with nothing is deleted. Tombstones go to the log.
func (c *Coordinator) ExpireOffsets() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	retention := c.cfg.OffsetsRetention.Milliseconds()
	for _, p := range c.parts {
		if !p.loaded {
			continue
		}
		for _, g := range p.groups {
			var base func(o *committed) int64
			var keep map[string]bool
			switch {
			case g.state == Empty && g.protocolType != "":
				base = func(*committed) int64 { return g.stateTime.UnixMilli() }
			case g.state == Empty:
				base = func(o *committed) int64 { return o.CommitTime }
			case g.state == Stable:
				topics, ok := g.subscribedTopics()
				if !ok {
					continue
				}
				keep = topics
				base = func(o *committed) int64 { return o.CommitTime }
			default:
				continue
			}
			var expired []TopicPartition
			for _, tp := range sortedTPs(g.offsets) {
				o := g.offsets[tp]
				due := o.ExpireTime != 0 && now.UnixMilli() >= o.ExpireTime ||
					o.ExpireTime == 0 && now.UnixMilli()-base(o) >= retention
				if due && !keep[tp.Topic] && g.pendingCommits[tp] == 0 {
					expired = append(expired, tp)
				}
			}
			if len(expired) > 0 {
				c.log.Info("expiring committed offsets", "group", g.id, "partitions", len(expired))
				c.removeOffsetsLocked(p, g, expired)
			} else if g.state == Empty && len(g.offsets) == 0 && g.metadata != nil && g.inflight == 0 {
				c.deleteMetadataLocked(p, g, nil)
			}
		}
	}
}

// deleteMetadataLocked writes a tombstone for an Empty group without
// offsets and forgets it once written.
func (c *Coordinator) deleteMetadataLocked(p *logPart, g *group, done chan int16) {
	g.inflight++
	c.enqueueLocked(p, &write{recs: []kv{{key: groupKey(g.id)}}, apply: func(err error) {
		g.inflight--
		if err == nil {
			g.metadata = nil
		}
		if done != nil {
			done <- c.writeCode(p, err)
		}
		c.maybeDropLocked(g)
	}})
}
