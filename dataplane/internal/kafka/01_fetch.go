package kafka

// Fetch: v4-v16.
// - Long-polls on the partitions' append signals until MinBytes are ready or
//   MaxWaitMillis passes; never sleeps in a loop.
// - MaxBytes and PartitionMaxBytes are honoured, except that the first batch
//   of each partition is returned whole even when larger (KIP-74). A
//   partition's record set continues across segment boundaries up to the
//   limits.
// - Record sets stay in the segment files until the connection writer
//   sends them (sendfile, see fetch_zerocopy.go).
// - Fetch sessions (v7+, KIP-227): full and incremental fetches, forgotten
//   topics, session eviction (least recently used beyond 1000 sessions).
// - Topic ids (v13+) name topics.
// - CurrentLeaderEpoch (v9+) is checked: FENCED_LEADER_EPOCH or
//   UNKNOWN_LEADER_EPOCH.
// - Isolation level is accepted; without transactions the last stable
//   offset equals the high watermark and no transaction is ever aborted.
// - Fetch from follower (v11+, KIP-392): a leader asked by a consumer whose
//   Rack matches an in-sync follower's rack (and not its own) answers with
//   PreferredReadReplica and no records; a follower serves consumers up to
//   its high watermark, which is never ahead of the leader's since a
//   follower only applies committed entries.
// - Not built: replica fetches (replication is Raft).

import (
	"context"
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/controlplane/metadata"
	"github.com/chronik-stream/chronik/dataplane/internal/partition"
)

func handleFetch(rc *Request, req *kmsg.FetchRequest) (Reply, error) {
	b := rc.broker()
	st := b.Meta.State()
	names := func(id [16]byte) string {
		if t := st.TopicByID(id); t != nil {
			return t.Name
		}
		return ""
	}
	sess, parts, code := b.sessions.resolve(req, names)
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	if code != 0 {
		resp.ErrorCode = code
		return Now(resp)
	}
	if sess != nil {
		resp.SessionID = sess.id
	}
	incremental := sess != nil && req.SessionEpoch > 0
	f := &fetcher{b: b, req: req, parts: parts, incremental: incremental}
	if ready := f.collect(); ready || req.MaxWaitMillis <= 0 {
		return Now(f.fill(resp))
	}
	return Reply{Wait: func(ctx context.Context) (kmsg.Response, error) {
		timer := time.NewTimer(time.Duration(req.MaxWaitMillis) * time.Millisecond)
		defer timer.Stop()
		cases := []reflect.SelectCase{
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
		}
		for {
			cases = f.signals(cases[:2])
			if f.collect() {
				break
			}
			if i, _, _ := reflect.Select(cases); i < 2 {
				f.collect()
				break
			}
		}
		return f.fill(resp), nil
	}}, nil
}

type fetchResult struct {
	sp        *sessionPartition
	errCode   int16
	hwm       int64
	logStart  int64
	preferred int32 // preferred read replica, -1 for none
	records   recordSet
}

type fetcher struct {
	b           *Broker
	req         *kmsg.FetchRequest
	parts       []*sessionPartition
	incremental bool
	results     []fetchResult
}

// signals appends to cases the append signals of the fetched partitions.
// Signals are taken before reading, so no append can slip in between.
func (f *fetcher) signals(cases []reflect.SelectCase) []reflect.SelectCase {
	for _, sp := range f.parts {
		if p := f.b.Replicas.Partition(sp.topic, sp.partition); p != nil {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(p.Changed())})
		}
	}
	return cases
}

// collect reads every partition and reports whether MinBytes are ready. It
// drops what an earlier collect read.
func (f *fetcher) collect() bool {
	for _, r := range f.results {
		r.records.release()
	}
	clear(f.results)
	f.results = f.results[:0]
	remaining := int(f.req.MaxBytes)
	if remaining <= 0 {
		remaining = 1 << 30
	}
	total := 0
	hasErr := false
	for _, sp := range f.parts {
		r := fetchResult{sp: sp, hwm: -1, logStart: -1, preferred: -1}
		r.errCode = f.readOne(sp, &r, remaining, total == 0)
		n := r.records.size()
		total += n
		remaining -= n
		hasErr = hasErr || r.errCode != 0
		f.results = append(f.results, r)
	}
	return hasErr || total >= int(f.req.MinBytes)
}

func (f *fetcher) readOne(sp *sessionPartition, r *fetchResult, remaining int, first bool) int16 {
	st := f.b.Meta.State()
	if sp.topic == "" {
		return kerr.UnknownTopicID.Code
	}
	if st.Partition(sp.topic, sp.partition) == nil {
		return kerr.UnknownTopicOrPartition.Code
	}
	p := f.b.Replicas.Partition(sp.topic, sp.partition)
	if p == nil {
		return kerr.NotLeaderForPartition.Code
	}
	leader, epoch := f.b.Replicas.IsLeader(p)
	// Consumers that know KIP-392 may read from followers.
	if !leader && (f.req.Version < 11 || f.req.ReplicaID >= 0) {
		return kerr.NotLeaderForPartition.Code
	}
	if sp.epoch >= 0 && f.req.Version >= 9 {
		if sp.epoch < epoch {
			return kerr.FencedLeaderEpoch.Code
		}
		if sp.epoch > epoch {
			return kerr.UnknownLeaderEpoch.Code
		}
	}
	r.hwm, r.logStart = p.HighWatermark(), p.LogStartOffset()
	if leader && f.req.Version >= 11 && f.req.Rack != "" {
		if id := f.b.preferredReadReplica(st, sp.topic, sp.partition, f.req.Rack); id >= 0 {
			r.preferred = id
			return 0
		}
	}
	if sp.offset < r.logStart || sp.offset > p.LogEndOffset() && leader {
		return kerr.OffsetOutOfRange.Code
	}
	if sp.offset >= r.hwm || remaining <= 0 && !first {
		return 0
	}
	limit := int(sp.maxBytes)
	if !first {
		limit = min(limit, remaining)
	}
	return readRecords(p, sp.offset, limit, r.hwm, &r.records)
}

// readRecords reads whole batches from offset into set, continuing into the
// following segments while they fit in limit. Only the partition's first
// batch may exceed limit (KIP-74), as Partition.Read returns it whole.
func readRecords(p *partition.Partition, offset int64, limit int, hwm int64, set *recordSet) int16 {
	size := 0
	for size < limit && offset < hwm {
		c, err := p.Read(offset, limit-size)
		if err != nil {
			if len(*set) > 0 {
				return 0 // serve what was read; the client asks again
			}
			return errCode(err)
		}
		if c.Len == 0 {
			break
		}
		if len(*set) > 0 && size+c.Len > limit {
			c.Release()
			break
		}
		*set = append(*set, c)
		size += c.Len
		offset = c.NextOffset
		if !c.SegmentEnd {
			break // stopped inside the segment: the next batch does not fit
		}
	}
	return 0
}

// fill writes the collected results into resp, keeping only news for an
// incremental session fetch, and records what the session has been told.
// When record sets were read it returns resp wrapped with them for the
// connection writer to splice in; the response then owns the sets.
func (f *fetcher) fill(resp *kmsg.FetchResponse) kmsg.Response {
	idx := map[string]int{}
	var sets [][]recordSet // by topic and partition index in resp
	for i := range f.results {
		r := &f.results[i]
		sp := r.sp
		news := r.errCode != 0 || len(r.records) > 0 || !sp.sent || r.hwm != sp.hwm || r.logStart != sp.logStart || r.preferred >= 0
		if f.incremental && !news {
			r.records.release()
			r.records = nil
			continue
		}
		sp.sent, sp.hwm, sp.logStart = true, r.hwm, r.logStart
		i, ok := idx[sp.topic]
		if !ok {
			t := kmsg.NewFetchResponseTopic()
			t.Topic, t.TopicID = sp.topic, sp.topicID
			resp.Topics = append(resp.Topics, t)
			sets = append(sets, nil)
			i = len(resp.Topics) - 1
			idx[sp.topic] = i
		}
		op := kmsg.NewFetchResponseTopicPartition()
		op.Partition, op.ErrorCode = sp.partition, r.errCode
		op.HighWatermark, op.LastStableOffset, op.LogStartOffset = r.hwm, r.hwm, r.logStart
		op.PreferredReadReplica = r.preferred
		if len(r.records) == 0 {
			op.RecordBatches = []byte{} // librdkafka rejects a null record set
		}
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, op)
		sets[i] = append(sets[i], r.records)
		r.records = nil // handed to the response
	}
	f.results = f.results[:0]
	return newZeroCopyFetch(resp, sets)
}

// preferredReadReplica picks, for a consumer in rack, an in-sync follower
// of topic/partition in that rack, unless this node is in it; -1 for none.
func (b *Broker) preferredReadReplica(st *metadata.State, topic string, partition int32, rack string) int32 {
	if self := st.Brokers[b.NodeID]; self != nil && self.Rack == rack {
		return -1
	}
	mp := st.Partition(topic, partition)
	if mp == nil {
		return -1
	}
	for _, id := range mp.ISR {
		if br := st.Brokers[id]; id != b.NodeID && br != nil && br.Alive && br.Rack == rack {
			return id
		}
	}
	return -1
}
