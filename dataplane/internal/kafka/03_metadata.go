package kafka

// Metadata: v0-v12.
// - Lists live brokers with their advertised address and rack, the cluster
//   id and the controller (the __meta leader in cluster mode, else this node).
// - Topics: all (nil list, or empty list before v1), or the named ones
//   (v10+ may name them by topic id). Unknown names are auto-created when
//   auto.create.topics.enable is on and the request allows it (v4+).
// - Per partition: leader, leader epoch (v7+), replicas, ISR; offline
//   replicas are the replicas whose broker is not alive. In cluster mode a
//   partition whose first election is not reported yet names its first
//   replica as leader with epoch -1 (unknown; see Broker.ElectedEpochs).
// - Authorized operations (v8+) are answered as "not provided" (-2147483648).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

func handleMetadata(rc *Request, req *kmsg.MetadataRequest) (Reply, error) {
	b := rc.broker()
	st := b.Meta.State()
	resp := req.ResponseKind().(*kmsg.MetadataResponse)

	if req.Topics != nil && !(len(req.Topics) == 0 && req.Version == 0) {
		var missing []string
		for _, t := range req.Topics {
			if t.Topic != nil && st.Topics[*t.Topic] == nil && validTopicName(*t.Topic) {
				missing = append(missing, *t.Topic)
			}
		}
		autoCreate := b.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
		if len(missing) > 0 && autoCreate {
			for _, name := range missing {
				_, err := b.createTopic(rc, name, b.DefaultPartitions, b.DefaultReplicationFactor, nil)
				if err != nil && errCode(err) != kerr.TopicAlreadyExists.Code {
					b.Log.Info("auto-create topic failed", "topic", name, "err", err)
				}
			}
			st = b.Meta.State()
		}
	}

	resp.Brokers = metadataBrokers(st)
	resp.ClusterID = &st.ClusterID
	resp.ControllerID = b.controllerID(st)
	if req.Topics == nil || (len(req.Topics) == 0 && req.Version == 0) {
		for _, t := range st.SortedTopics() {
			resp.Topics = append(resp.Topics, b.metadataTopic(st, t))
		}
		return Now(resp)
	}
	for _, rt := range req.Topics {
		var t *metadata.Topic
		if rt.Topic != nil {
			t = st.Topics[*rt.Topic]
		} else {
			t = st.TopicByID(rt.TopicID)
		}
		if t == nil {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic, mt.TopicID = rt.Topic, rt.TopicID
			mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			if rt.Topic != nil && !validTopicName(*rt.Topic) {
				mt.ErrorCode = kerr.InvalidTopicException.Code
			}
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		resp.Topics = append(resp.Topics, b.metadataTopic(st, t))
	}
	return Now(resp)
}

func metadataBrokers(st *metadata.State) []kmsg.MetadataResponseBroker {
	var out []kmsg.MetadataResponseBroker
	for _, br := range st.LiveBrokers() {
		if !brokerRole(br) {
			continue
		}
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID, mb.Host, mb.Port = br.ID, br.Host, br.Port
		if br.Rack != "" {
			rack := br.Rack
			mb.Rack = &rack
		}
		out = append(out, mb)
	}
	return out
}

// brokerRole reports whether a registered node serves the Kafka protocol.
func brokerRole(br *metadata.Broker) bool {
	if len(br.Roles) == 0 {
		return true
	}
	for _, r := range br.Roles {
		if r == "broker" {
			return true
		}
	}
	return false
}

func (b *Broker) metadataTopic(st *metadata.State, t *metadata.Topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.Name
	mt.Topic, mt.TopicID, mt.IsInternal = &name, t.ID, t.Internal
	mt.AuthorizedOperations = -2147483648
	for _, p := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition, mp.Leader, mp.LeaderEpoch = p.ID, p.Leader, p.LeaderEpoch
		if b.ElectedEpochs && p.LeaderEpoch == 0 {
			mp.LeaderEpoch = -1
		}
		mp.Replicas, mp.ISR = p.Replicas, p.ISR
		for _, r := range p.Replicas {
			if br := st.Brokers[r]; br == nil || !br.Alive {
				mp.OfflineReplicas = append(mp.OfflineReplicas, r)
			}
		}
		if p.Leader < 0 {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// controllerID is the node clients should send admin requests to: any live
// broker works here since every node forwards, so prefer this one.
func (b *Broker) controllerID(st *metadata.State) int32 {
	if br := st.Brokers[b.NodeID]; br != nil && br.Alive {
		return b.NodeID
	}
	if live := st.LiveBrokers(); len(live) > 0 {
		return live[0].ID
	}
	return -1
}
