package kafka

// OffsetForLeaderEpoch: v2-v4. For each partition, the end offset of the
// largest leader epoch <= the requested one, from the log's epoch cache.
// CurrentLeaderEpoch is checked like Fetch does. Consumers use it to detect
// log truncation after an unclean leader change.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleOffsetForLeaderEpoch(rc *Request, req *kmsg.OffsetForLeaderEpochRequest) (Reply, error) {
	b := rc.broker()
	st := b.Meta.State()
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, rt := range req.Topics {
		ot := kmsg.NewOffsetForLeaderEpochResponseTopic()
		ot.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			op := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			op.Partition, op.LeaderEpoch, op.EndOffset = rp.Partition, -1, -1
			p := b.Replicas.Partition(rt.Topic, rp.Partition)
			switch {
			case st.Partition(rt.Topic, rp.Partition) == nil:
				op.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case p == nil:
				op.ErrorCode = kerr.NotLeaderForPartition.Code
			default:
				leader, epoch := b.Replicas.IsLeader(p)
				switch {
				case !leader:
					op.ErrorCode = kerr.NotLeaderForPartition.Code
				case rp.CurrentLeaderEpoch >= 0 && rp.CurrentLeaderEpoch < epoch:
					op.ErrorCode = kerr.FencedLeaderEpoch.Code
				case rp.CurrentLeaderEpoch > epoch:
					op.ErrorCode = kerr.UnknownLeaderEpoch.Code
				default:
					op.LeaderEpoch, op.EndOffset = p.OffsetForLeaderEpoch(rp.LeaderEpoch)
				}
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return Now(resp)
}
