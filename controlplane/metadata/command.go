package metadata

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Errors returned by Apply. Callers map them to protocol error codes.
var (
	ErrTopicExists       = errors.New("metadata: topic already exists")
	ErrUnknownTopic      = errors.New("metadata: unknown topic")
	ErrUnknownPartition  = errors.New("metadata: unknown partition")
	ErrInvalidPartitions = errors.New("metadata: invalid partition count")
	ErrUnknownBroker     = errors.New("metadata: unknown broker")
	ErrStaleEpoch        = errors.New("metadata: stale leader epoch")
	ErrBadCommand        = errors.New("metadata: malformed command")
)

// Command is one change to the State. Exactly one field is set.
type Command struct {
	RegisterBroker   *Broker              `json:"register_broker,omitempty"`
	BrokerState      *BrokerStateCmd      `json:"broker_state,omitempty"`
	RemoveBroker     *int32               `json:"remove_broker,omitempty"`
	CreateTopic      *Topic               `json:"create_topic,omitempty"`
	DeleteTopic      *string              `json:"delete_topic,omitempty"`
	CreatePartitions *CreatePartitionsCmd `json:"create_partitions,omitempty"`
	AlterConfigs     *AlterConfigsCmd     `json:"alter_configs,omitempty"`
	PartitionState   *PartitionStateCmd   `json:"partition_state,omitempty"`
	AllocProducerIDs *int64               `json:"alloc_producer_ids,omitempty"`
	// InitTxnProducer bumps the epoch of a transactional id's producer,
	// giving it a producer id first if it has none.
	InitTxnProducer *string `json:"init_txn_producer,omitempty"`
}

// BrokerStateCmd changes a broker's liveness or maintenance flags.
type BrokerStateCmd struct {
	ID              int32 `json:"id"`
	Alive           bool  `json:"alive"`
	Draining        bool  `json:"draining"`
	Decommissioning bool  `json:"decommissioning"`
}

// CreatePartitionsCmd appends partitions with the given replica lists.
type CreatePartitionsCmd struct {
	Topic    string    `json:"topic"`
	Replicas [][]int32 `json:"replicas"`
}

// AlterConfigsCmd changes topic configs. With Replace, Set becomes the whole
// config (AlterConfigs); otherwise Set and Delete are applied incrementally.
type AlterConfigsCmd struct {
	Topic   string            `json:"topic"`
	Replace bool              `json:"replace,omitempty"`
	Set     map[string]string `json:"set,omitempty"`
	Delete  []string          `json:"delete,omitempty"`
}

// PartitionStateCmd records a partition's leader, epoch, ISR or replicas. A
// nil slice leaves that field unchanged. An epoch lower than the current one
// is rejected, so a delayed report cannot roll leadership back.
type PartitionStateCmd struct {
	Topic       string  `json:"topic"`
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	ISR         []int32 `json:"isr,omitempty"`
	Replicas    []int32 `json:"replicas,omitempty"`
}

// Encode serializes a command for a log entry.
func (c *Command) Encode() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("metadata: encode command: %v", err)) // only plain data
	}
	return b
}

// DecodeCommand parses a log entry.
func DecodeCommand(b []byte) (*Command, error) {
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	return &c, nil
}

// Result is what applying a command produced, for the proposer.
type Result struct {
	// FirstProducerID is set by AllocProducerIDs.
	FirstProducerID int64
	// ProducerID and ProducerEpoch are set by InitTxnProducer.
	ProducerID    int64
	ProducerEpoch int16
}

// Apply returns the state after cmd at log index idx. s is not modified.
// An error means the command was rejected and the state is unchanged (the
// index still advances so that replays stay aligned).
func (s *State) Apply(idx uint64, cmd *Command) (*State, Result, error) {
	n := s.Clone()
	n.Index = idx
	res, err := n.apply(cmd)
	if err != nil {
		c := *s
		c.Index = idx
		return &c, Result{}, err
	}
	return n, res, nil
}

func (s *State) apply(cmd *Command) (Result, error) {
	switch {
	case cmd.RegisterBroker != nil:
		b := *cmd.RegisterBroker
		b.Roles = slices.Clone(b.Roles)
		if old := s.Brokers[b.ID]; old != nil {
			b.Draining, b.Decommissioning = old.Draining, old.Decommissioning
		}
		s.Brokers[b.ID] = &b
	case cmd.BrokerState != nil:
		b := s.Brokers[cmd.BrokerState.ID]
		if b == nil {
			return Result{}, fmt.Errorf("%w %d", ErrUnknownBroker, cmd.BrokerState.ID)
		}
		b.Alive = cmd.BrokerState.Alive
		b.Draining = cmd.BrokerState.Draining
		b.Decommissioning = cmd.BrokerState.Decommissioning
	case cmd.RemoveBroker != nil:
		if s.Brokers[*cmd.RemoveBroker] == nil {
			return Result{}, fmt.Errorf("%w %d", ErrUnknownBroker, *cmd.RemoveBroker)
		}
		delete(s.Brokers, *cmd.RemoveBroker)
	case cmd.CreateTopic != nil:
		t := cmd.CreateTopic
		if s.Topics[t.Name] != nil {
			return Result{}, fmt.Errorf("%w: %s", ErrTopicExists, t.Name)
		}
		if len(t.Partitions) == 0 {
			return Result{}, fmt.Errorf("%w: %d", ErrInvalidPartitions, 0)
		}
		s.Topics[t.Name] = t.clone()
	case cmd.DeleteTopic != nil:
		if s.Topics[*cmd.DeleteTopic] == nil {
			return Result{}, fmt.Errorf("%w: %s", ErrUnknownTopic, *cmd.DeleteTopic)
		}
		delete(s.Topics, *cmd.DeleteTopic)
	case cmd.CreatePartitions != nil:
		return Result{}, s.createPartitions(cmd.CreatePartitions)
	case cmd.AlterConfigs != nil:
		return Result{}, s.alterConfigs(cmd.AlterConfigs)
	case cmd.PartitionState != nil:
		return Result{}, s.partitionState(cmd.PartitionState)
	case cmd.AllocProducerIDs != nil:
		first := s.NextProducerID
		s.NextProducerID += max(*cmd.AllocProducerIDs, 1)
		return Result{FirstProducerID: first}, nil
	case cmd.InitTxnProducer != nil:
		return s.initTxnProducer(*cmd.InitTxnProducer), nil
	default:
		return Result{}, fmt.Errorf("%w: no change set", ErrBadCommand)
	}
	return Result{}, nil
}

func (s *State) createPartitions(c *CreatePartitionsCmd) error {
	t := s.Topics[c.Topic]
	if t == nil {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, c.Topic)
	}
	if len(c.Replicas) == 0 {
		return fmt.Errorf("%w: no new partitions", ErrInvalidPartitions)
	}
	for _, r := range c.Replicas {
		id := int32(len(t.Partitions))
		p := Partition{ID: id, Replicas: slices.Clone(r), ISR: slices.Clone(r), Leader: -1}
		if len(r) > 0 {
			p.Leader = r[0]
		}
		t.Partitions = append(t.Partitions, p)
	}
	return nil
}

func (s *State) alterConfigs(c *AlterConfigsCmd) error {
	t := s.Topics[c.Topic]
	if t == nil {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, c.Topic)
	}
	if c.Replace {
		t.Configs = maps.Clone(c.Set)
		return nil
	}
	if t.Configs == nil {
		t.Configs = map[string]string{}
	}
	maps.Copy(t.Configs, c.Set)
	for _, k := range c.Delete {
		delete(t.Configs, k)
	}
	return nil
}

func (s *State) partitionState(c *PartitionStateCmd) error {
	t := s.Topics[c.Topic]
	if t == nil {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, c.Topic)
	}
	if c.Partition < 0 || int(c.Partition) >= len(t.Partitions) {
		return fmt.Errorf("%w: %s/%d", ErrUnknownPartition, c.Topic, c.Partition)
	}
	p := &t.Partitions[c.Partition]
	if c.LeaderEpoch < p.LeaderEpoch {
		return fmt.Errorf("%w: %s/%d epoch %d < %d", ErrStaleEpoch, c.Topic, c.Partition, c.LeaderEpoch, p.LeaderEpoch)
	}
	p.Leader, p.LeaderEpoch = c.Leader, c.LeaderEpoch
	if c.ISR != nil {
		p.ISR = slices.Clone(c.ISR)
	}
	if c.Replicas != nil {
		p.Replicas = slices.Clone(c.Replicas)
	}
	return nil
}

// initTxnProducer gives a transactional id the next epoch of its producer id,
// moving to a new id when the epoch is exhausted.
func (s *State) initTxnProducer(txnID string) Result {
	if s.TxnProducers == nil {
		s.TxnProducers = map[string]TxnProducer{}
	}
	p, ok := s.TxnProducers[txnID]
	switch {
	case !ok || p.Epoch >= 32766:
		p = TxnProducer{ID: s.NextProducerID, Epoch: 0}
		s.NextProducerID++
	default:
		p.Epoch++
	}
	s.TxnProducers[txnID] = p
	return Result{ProducerID: p.ID, ProducerEpoch: p.Epoch}
}
