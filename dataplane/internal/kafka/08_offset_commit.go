package kafka

// OffsetCommit: v2-v9.
// - Commits go to the group's __consumer_offsets partition with acks=-1
//   semantics before the answer, so the handler waits off the connection
//   reader.
// - Generation -1 commits (no group management) are accepted for groups
//   without members; otherwise the member and generation must be current
//   (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID, and
//   REBALANCE_IN_PROGRESS while the group waits for its assignment).
// - v2-v4 RetentionTimeMillis is honoured per offset; v6+ stores the
//   leader epoch; v7+ carries group.instance.id.
// - Unknown topics or partitions get UNKNOWN_TOPIC_OR_PARTITION; metadata
//   over offset.metadata.max.bytes gets OFFSET_METADATA_TOO_LARGE.
// - Not built: v10 (topic ids, KIP-848), v0-v1 (ZooKeeper-era storage).

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/dataplane/internal/group"
)

func handleOffsetCommit(rc *Request, req *kmsg.OffsetCommitRequest) (Reply, error) {
	coord := rc.broker().Groups
	r := group.CommitRequest{Group: req.Group, Generation: req.Generation, MemberID: req.MemberID, InstanceID: deref(req.InstanceID)}
	if req.Version <= 4 && req.RetentionTimeMillis > 0 {
		r.Retention = time.Duration(req.RetentionTimeMillis) * time.Millisecond
	}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			epoch := int32(-1)
			if req.Version >= 6 {
				epoch = p.LeaderEpoch
			}
			r.Offsets = append(r.Offsets, group.OffsetCommit{Topic: t.Topic, Partition: p.Partition, Offset: p.Offset,
				LeaderEpoch: epoch, Metadata: deref(p.Metadata)})
		}
	}
	answer := func(codes []int16) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		i := 0
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, codes[i]
				rt.Partitions = append(rt.Partitions, rp)
				i++
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	if coord == nil {
		return Now(answer(sameCode(len(r.Offsets), kerr.CoordinatorNotAvailable.Code)))
	}
	return Reply{Wait: func(ctx context.Context) (kmsg.Response, error) {
		return answer(coord.CommitOffsets(ctx, r)), nil
	}}, nil
}

func sameCode(n int, code int16) []int16 {
	codes := make([]int16, n)
	for i := range codes {
		codes[i] = code
	}
	return codes
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
