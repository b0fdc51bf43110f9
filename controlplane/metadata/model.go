// Package metadata is the cluster's shared model: brokers, topics, partitions
// and configs, changed only by Commands applied in log order.
//
// The same State and Apply serve both modes. In cluster mode the commands are
// entries of the `__meta` Raft log; in single-node mode a Store applies them
// locally and persists a snapshot after each change. State values handed out
// to readers are never mutated: Apply works on a copy.
package metadata

import (
	"maps"
	"slices"
)

// Broker is a registered broker.
type Broker struct {
	ID    int32    `json:"id"`
	Host  string   `json:"host"`
	Port  int32    `json:"port"`
	Rack  string   `json:"rack,omitempty"`
	Roles []string `json:"roles,omitempty"`
	// RaftAddr is the broker's raft-port address, host:port.
	RaftAddr string `json:"raft_addr,omitempty"`
	// Alive is false once the broker has missed its heartbeats; it is then
	// fenced: not chosen for new replicas and not listed to clients.
	Alive bool `json:"alive"`
	// Draining brokers hold no leaders; Decommissioning ones no replicas.
	Draining        bool `json:"draining,omitempty"`
	Decommissioning bool `json:"decommissioning,omitempty"`
}

// Partition is one partition of a topic.
type Partition struct {
	ID          int32   `json:"id"`
	Replicas    []int32 `json:"replicas"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	ISR         []int32 `json:"isr"`
}

// Topic is a topic with its partitions and its non-default configs.
type Topic struct {
	Name       string            `json:"name"`
	ID         [16]byte          `json:"id"`
	Internal   bool              `json:"internal,omitempty"`
	Partitions []Partition       `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
}

// State is the whole metadata image at one log index.
type State struct {
	ClusterID string            `json:"cluster_id"`
	Index     uint64            `json:"index"`
	Brokers   map[int32]*Broker `json:"brokers"`
	Topics    map[string]*Topic `json:"topics"`
	// NextProducerID is the first producer id not yet handed out.
	NextProducerID int64 `json:"next_producer_id"`
	// TxnProducers maps transactional ids to their producer.
	TxnProducers map[string]TxnProducer `json:"txn_producers,omitempty"`
}

// TxnProducer is the producer id and epoch of a transactional id.
type TxnProducer struct {
	ID    int64 `json:"id"`
	Epoch int16 `json:"epoch"`
}

// NewState returns an empty image for a cluster.
func NewState(clusterID string) *State {
	return &State{
		ClusterID:      clusterID,
		Brokers:        map[int32]*Broker{},
		Topics:         map[string]*Topic{},
		NextProducerID: 1000,
	}
}

// Clone returns a deep copy.
func (s *State) Clone() *State {
	c := *s
	c.Brokers = make(map[int32]*Broker, len(s.Brokers))
	for id, b := range s.Brokers {
		bc := *b
		bc.Roles = slices.Clone(b.Roles)
		c.Brokers[id] = &bc
	}
	c.TxnProducers = maps.Clone(s.TxnProducers)
	c.Topics = make(map[string]*Topic, len(s.Topics))
	for name, t := range s.Topics {
		c.Topics[name] = t.clone()
	}
	return &c
}

func (t *Topic) clone() *Topic {
	c := *t
	c.Configs = maps.Clone(t.Configs)
	c.Partitions = make([]Partition, len(t.Partitions))
	for i, p := range t.Partitions {
		p.Replicas = slices.Clone(p.Replicas)
		p.ISR = slices.Clone(p.ISR)
		c.Partitions[i] = p
	}
	return &c
}

// TopicByID finds a topic by its id.
func (s *State) TopicByID(id [16]byte) *Topic {
	for _, t := range s.Topics {
		if t.ID == id {
			return t
		}
	}
	return nil
}

// SortedTopics returns the topics in name order.
func (s *State) SortedTopics() []*Topic {
	out := make([]*Topic, 0, len(s.Topics))
	for _, t := range s.Topics {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *Topic) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// LiveBrokers returns alive brokers in id order.
func (s *State) LiveBrokers() []*Broker {
	var out []*Broker
	for _, b := range s.Brokers {
		if b.Alive {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b *Broker) int { return int(a.ID - b.ID) })
	return out
}

// Partition returns topic/partition or nil.
func (s *State) Partition(topic string, partition int32) *Partition {
	t := s.Topics[topic]
	if t == nil || partition < 0 || int(partition) >= len(t.Partitions) {
		return nil
	}
	return &t.Partitions[partition]
}
