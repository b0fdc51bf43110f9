package kafka

// DeleteRecords: v0-v2. Moves each partition's log start offset forward to
// the given offset (-1 means the high watermark); whole segments below it
// are removed. Offsets beyond the high watermark get OFFSET_OUT_OF_RANGE.
// In cluster mode the new start offset is replicated through the
// partition's write path.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleDeleteRecords(rc *Request, req *kmsg.DeleteRecordsRequest) (Reply, error) {
	b := rc.broker()
	st := b.Meta.State()
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, rt := range req.Topics {
		ot := kmsg.NewDeleteRecordsResponseTopic()
		ot.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			op := kmsg.NewDeleteRecordsResponseTopicPartition()
			op.Partition, op.LowWatermark = rp.Partition, -1
			switch p := b.Replicas.Partition(rt.Topic, rp.Partition); {
			case st.Partition(rt.Topic, rp.Partition) == nil:
				op.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case p == nil:
				op.ErrorCode = kerr.NotLeaderForPartition.Code
			default:
				if leader, _ := b.Replicas.IsLeader(p); !leader {
					op.ErrorCode = kerr.NotLeaderForPartition.Code
					break
				}
				low, err := b.Replicas.DeleteRecords(rc.Ctx, p, rp.Offset)
				op.LowWatermark, op.ErrorCode = low, errCode(err)
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return Now(resp)
}
