package kafka

// CreatePartitions: v0-v3. Grows a topic to Count partitions; explicit
// assignments are honoured, otherwise replicas are assigned like new topics.
// ValidateOnly checks and changes nothing.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

func handleCreatePartitions(rc *Request, req *kmsg.CreatePartitionsRequest) (Reply, error) {
	b := rc.broker()
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	for _, rt := range req.Topics {
		out := kmsg.NewCreatePartitionsResponseTopic()
		out.Topic = rt.Topic
		if err := createPartitions(rc, b, rt, req.ValidateOnly); err != nil {
			out.ErrorCode = errCode(err)
			out.ErrorMessage = topicErrMessage(err)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return Now(resp)
}

func createPartitions(rc *Request, b *Broker, rt kmsg.CreatePartitionsRequestTopic, validateOnly bool) error {
	st := b.Meta.State()
	t := st.Topics[rt.Topic]
	if t == nil {
		return badTopic(kerr.UnknownTopicOrPartition, "unknown topic %q", rt.Topic)
	}
	have := int32(len(t.Partitions))
	if rt.Count <= have {
		return badTopic(kerr.InvalidPartitions, "topic %q has %d partitions; the new count %d must be larger", rt.Topic, have, rt.Count)
	}
	add := int(rt.Count - have)
	rf := len(t.Partitions[0].Replicas)
	var replicas [][]int32
	if len(rt.Assignment) > 0 {
		if len(rt.Assignment) != add {
			return badTopic(kerr.InvalidReplicaAssignment, "%d assignments for %d new partitions", len(rt.Assignment), add)
		}
		for _, a := range rt.Assignment {
			for _, r := range a.Replicas {
				if st.Brokers[r] == nil {
					return badTopic(kerr.InvalidReplicaAssignment, "unknown broker %d", r)
				}
			}
			replicas = append(replicas, a.Replicas)
		}
	} else {
		var err error
		if replicas, err = b.Assign(st, add, rf); err != nil {
			return badTopic(kerr.InvalidReplicationFactor, "%v", err)
		}
	}
	if validateOnly {
		return nil
	}
	if _, err := b.Meta.Propose(rc.Ctx, &metadata.Command{CreatePartitions: &metadata.CreatePartitionsCmd{Topic: rt.Topic, Replicas: replicas}}); err != nil {
		return err
	}
	return b.Replicas.Await(rc.Ctx, rt.Topic)
}
