package kafka

// CreateTopics: v2-v7.
// - NumPartitions / ReplicationFactor of -1 take the broker defaults (v4+).
// - Manual ReplicaAssignment is honoured when given.
// - ValidateOnly checks everything and creates nothing.
// - v5+ answers with the partition count, replication factor and configs.
// - Topic ids (v7) are returned.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

func handleCreateTopics(rc *Request, req *kmsg.CreateTopicsRequest) (Reply, error) {
	b := rc.broker()
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		if seen[rt.Topic] > 1 {
			st.ErrorCode = kerr.InvalidRequest.Code
			msg := "topic named more than once in one request"
			st.ErrorMessage = &msg
			resp.Topics = append(resp.Topics, st)
			continue
		}
		configs := map[string]string{}
		for _, c := range rt.Configs {
			if c.Value != nil {
				configs[c.Name] = *c.Value
			}
		}
		t, err := createOne(rc, b, req, rt, configs)
		if err != nil {
			st.ErrorCode = errCode(err)
			st.ErrorMessage = topicErrMessage(err)
		} else {
			st.TopicID = t.ID
			st.NumPartitions = int32(len(t.Partitions))
			st.ReplicationFactor = int16(len(t.Partitions[0].Replicas))
			st.Configs = createdConfigs(t)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return Now(resp)
}

func createOne(rc *Request, b *Broker, req *kmsg.CreateTopicsRequest, rt kmsg.CreateTopicsRequestTopic, configs map[string]string) (*metadata.Topic, error) {
	if len(rt.ReplicaAssignment) > 0 {
		return createAssigned(rc, b, req.ValidateOnly, rt, configs)
	}
	if req.ValidateOnly {
		return b.planTopic(b.Meta.State(), rt.Topic, rt.NumPartitions, rt.ReplicationFactor, configs, nil)
	}
	return b.createTopic(rc, rt.Topic, rt.NumPartitions, rt.ReplicationFactor, configs)
}

// createAssigned creates a topic whose replicas the client chose.
func createAssigned(rc *Request, b *Broker, validateOnly bool, rt kmsg.CreateTopicsRequestTopic, configs map[string]string) (*metadata.Topic, error) {
	if rt.NumPartitions != -1 || rt.ReplicationFactor != -1 {
		return nil, badTopic(kerr.InvalidRequest, "replica assignment given together with partitions or replication factor")
	}
	st := b.Meta.State()
	rf := len(rt.ReplicaAssignment[0].Replicas)
	replicas := make([][]int32, len(rt.ReplicaAssignment))
	for _, a := range rt.ReplicaAssignment {
		if a.Partition < 0 || int(a.Partition) >= len(replicas) || replicas[a.Partition] != nil {
			return nil, badTopic(kerr.InvalidReplicaAssignment, "partitions must be numbered 0..%d once each", len(replicas)-1)
		}
		if len(a.Replicas) != rf || rf == 0 {
			return nil, badTopic(kerr.InvalidReplicaAssignment, "every partition needs the same number of replicas")
		}
		for i, r := range a.Replicas {
			if st.Brokers[r] == nil {
				return nil, badTopic(kerr.InvalidReplicaAssignment, "unknown broker %d", r)
			}
			for _, o := range a.Replicas[:i] {
				if o == r {
					return nil, badTopic(kerr.InvalidReplicaAssignment, "broker %d listed twice for partition %d", r, a.Partition)
				}
			}
		}
		replicas[a.Partition] = a.Replicas
	}
	t, err := b.planTopic(st, rt.Topic, int32(len(replicas)), int16(rf), configs, replicas)
	if err != nil || validateOnly {
		return t, err
	}
	return t, b.proposeTopic(rc, t)
}

func createdConfigs(t *metadata.Topic) []kmsg.CreateTopicsResponseTopicConfig {
	var out []kmsg.CreateTopicsResponseTopicConfig
	for _, c := range topicConfigs {
		rc := kmsg.NewCreateTopicsResponseTopicConfig()
		rc.Name = c.name
		v, ok := t.Configs[c.name]
		if !ok {
			v = c.def
			rc.Source = int8(kmsg.ConfigSourceDefaultConfig)
		} else {
			rc.Source = int8(kmsg.ConfigSourceDynamicTopicConfig)
		}
		rc.Value = &v
		out = append(out, rc)
	}
	return out
}
