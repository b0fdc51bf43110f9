package kafka

// OffsetDelete: v0.
// - Deletes committed offsets of a group (tombstones in
//   __consumer_offsets), waiting off the connection reader.
// - An Empty group loses any offsets asked for; a consumer group with
//   members keeps those of topics it subscribes to
//   (GROUP_SUBSCRIBED_TO_TOPIC per partition); other non-empty groups get
//   NON_EMPTY_GROUP. Unknown groups get GROUP_ID_NOT_FOUND, unknown topics
//   UNKNOWN_TOPIC_OR_PARTITION.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/dataplane/internal/group"
)

func handleOffsetDelete(rc *Request, req *kmsg.OffsetDeleteRequest) (Reply, error) {
	coord := rc.broker().Groups
	var tps []group.TopicPartition
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			tps = append(tps, group.TopicPartition{Topic: t.Topic, Partition: p.Partition})
		}
	}
	answer := func(code int16, codes []int16) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
		resp.ErrorCode = code
		if code != 0 {
			return resp
		}
		i := 0
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetDeleteResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetDeleteResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, codes[i]
				rt.Partitions = append(rt.Partitions, rp)
				i++
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	if coord == nil {
		return Now(answer(kerr.CoordinatorNotAvailable.Code, nil))
	}
	return Reply{Wait: func(ctx context.Context) (kmsg.Response, error) {
		return answer(coord.DeleteOffsets(ctx, req.Group, tps)), nil
	}}, nil
}
