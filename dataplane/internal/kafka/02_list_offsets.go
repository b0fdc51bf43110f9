package kafka

// ListOffsets: v1-v8.
// - Timestamp -2 earliest (log start), -1 latest (high watermark; the last
//   stable offset is the same without transactions), -3 max timestamp (v7),
//   otherwise the first offset whose batch timestamp is >= the given one.
// - CurrentLeaderEpoch (v4+) is checked; the leader epoch is returned.
// - Not built: -4 earliest local, -5 tiered (v8+ is accepted but those
//   sentinels answer like earliest).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleListOffsets(rc *Request, req *kmsg.ListOffsetsRequest) (Reply, error) {
	b := rc.broker()
	st := b.Meta.State()
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		ot := kmsg.NewListOffsetsResponseTopic()
		ot.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			op := kmsg.NewListOffsetsResponseTopicPartition()
			op.Partition, op.Offset, op.Timestamp, op.LeaderEpoch = rp.Partition, -1, -1, -1
			op.ErrorCode = listOffset(b, st.Partition(rt.Topic, rp.Partition) != nil, rt.Topic, rp, &op, req.Version)
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return Now(resp)
}

func listOffset(b *Broker, known bool, topic string, rp kmsg.ListOffsetsRequestTopicPartition, op *kmsg.ListOffsetsResponseTopicPartition, version int16) int16 {
	if !known {
		return kerr.UnknownTopicOrPartition.Code
	}
	p := b.Replicas.Partition(topic, rp.Partition)
	if p == nil {
		return kerr.NotLeaderForPartition.Code
	}
	leader, epoch := b.Replicas.IsLeader(p)
	if !leader {
		return kerr.NotLeaderForPartition.Code
	}
	if version >= 4 && rp.CurrentLeaderEpoch >= 0 {
		if rp.CurrentLeaderEpoch < epoch {
			return kerr.FencedLeaderEpoch.Code
		}
		if rp.CurrentLeaderEpoch > epoch {
			return kerr.UnknownLeaderEpoch.Code
		}
	}
	op.LeaderEpoch = epoch
	switch rp.Timestamp {
	case -1:
		op.Offset = p.HighWatermark()
	case -2, -4, -5:
		op.Offset = p.LogStartOffset()
	case -3:
		op.Offset, op.Timestamp = p.MaxTimestamp()
	default:
		off, ts, ok := p.OffsetForTimestamp(rp.Timestamp)
		if ok && off < p.HighWatermark() {
			op.Offset, op.Timestamp = off, ts
		}
	}
	return 0
}
