package kafka

// OffsetFetch: v1-v9.
// - v1: per-partition errors only; v2+: a top-level error too, and null
//   topics mean every committed partition of the group.
// - v5+ returns the committed leader epoch.
// - v7 RequireStable: offsets are always stable here, because
//   transactional offset commits are not built.
// - v8+ fetches several groups in one request; each group is answered
//   (or refused: NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS) on its own.
// - v9 member id and epoch are for KIP-848 groups; classic groups ignore
//   them, as Kafka does.
// - Partitions without a commit get offset -1.
// - Not built: v10 (topic ids), v0 (ZooKeeper-era storage).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/dataplane/internal/group"
)

func handleOffsetFetch(rc *Request, req *kmsg.OffsetFetchRequest) (Reply, error) {
	coord := rc.broker().Groups
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	fetch := func(id string, tps []group.TopicPartition) (int16, []group.FetchedOffset) {
		if coord == nil {
			return kerr.CoordinatorNotAvailable.Code, nil
		}
		return coord.FetchOffsets(id, tps)
	}
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			var tps []group.TopicPartition
			if rg.Topics != nil {
				tps = []group.TopicPartition{}
				for _, t := range rg.Topics {
					for _, p := range t.Partitions {
						tps = append(tps, group.TopicPartition{Topic: t.Topic, Partition: p})
					}
				}
			}
			code, offsets := fetch(rg.Group, tps)
			og := kmsg.NewOffsetFetchResponseGroup()
			og.Group, og.ErrorCode = rg.Group, code
			for _, t := range groupByTopic(offsets) {
				ot := kmsg.NewOffsetFetchResponseGroupTopic()
				ot.Topic = t[0].Topic
				for _, f := range t {
					op := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					op.Partition, op.Offset, op.LeaderEpoch, op.ErrorCode = f.Partition, f.Offset, f.LeaderEpoch, f.ErrorCode
					op.Metadata = &f.Metadata
					ot.Partitions = append(ot.Partitions, op)
				}
				og.Topics = append(og.Topics, ot)
			}
			resp.Groups = append(resp.Groups, og)
		}
		return Now(resp)
	}
	var tps []group.TopicPartition
	if req.Topics != nil || req.Version < 2 {
		tps = []group.TopicPartition{}
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				tps = append(tps, group.TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
	}
	code, offsets := fetch(req.Group, tps)
	if code != 0 {
		// Every requested partition carries the error (v1 has nothing
		// else); v2+ also has it at the top.
		offsets = nil
		for _, tp := range tps {
			offsets = append(offsets, group.FetchedOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: -1, LeaderEpoch: -1, ErrorCode: code})
		}
	}
	resp.ErrorCode = code
	for _, t := range groupByTopic(offsets) {
		ot := kmsg.NewOffsetFetchResponseTopic()
		ot.Topic = t[0].Topic
		for _, f := range t {
			op := kmsg.NewOffsetFetchResponseTopicPartition()
			op.Partition, op.Offset, op.LeaderEpoch, op.ErrorCode = f.Partition, f.Offset, f.LeaderEpoch, f.ErrorCode
			op.Metadata = &f.Metadata
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return Now(resp)
}

// groupByTopic splits offsets into runs of one topic, in first-seen order.
func groupByTopic(offsets []group.FetchedOffset) [][]group.FetchedOffset {
	idx := map[string]int{}
	var out [][]group.FetchedOffset
	for _, f := range offsets {
		i, ok := idx[f.Topic]
		if !ok {
			i = len(out)
			idx[f.Topic] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], f)
	}
	return out
}
