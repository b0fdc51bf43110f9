package kafka

import (
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

// topicError carries a Kafka code and a message for CreateTopics and friends.
type topicError struct {
	code *kerr.Error
	msg  string
}

func (e *topicError) Error() string { return e.msg }
func (e *topicError) Unwrap() error { return e.code }

func badTopic(code *kerr.Error, format string, args ...any) error {
	return &topicError{code: code, msg: fmt.Sprintf(format, args...)}
}

// planTopic validates a new topic and, unless the client chose them,
// assigns its replicas.
func (b *Broker) planTopic(st *metadata.State, name string, partitions int32, rf int16, configs map[string]string, replicas [][]int32) (*metadata.Topic, error) {
	if !validTopicName(name) {
		return nil, badTopic(kerr.InvalidTopicException, "invalid topic name %q: use 1-249 of [a-zA-Z0-9._-]", name)
	}
	if st.Topics[name] != nil {
		return nil, badTopic(kerr.TopicAlreadyExists, "topic %q already exists", name)
	}
	if partitions == -1 {
		partitions = b.DefaultPartitions
	}
	if rf == -1 {
		rf = b.DefaultReplicationFactor
	}
	if partitions < 1 {
		return nil, badTopic(kerr.InvalidPartitions, "number of partitions must be at least 1, got %d", partitions)
	}
	if rf < 1 {
		return nil, badTopic(kerr.InvalidReplicationFactor, "replication factor must be at least 1, got %d", rf)
	}
	for k, v := range configs {
		if err := validateTopicConfig(k, &v); err != nil {
			return nil, badTopic(kerr.InvalidConfig, "%v", err)
		}
	}
	if replicas == nil {
		var err error
		if replicas, err = b.Assign(st, int(partitions), int(rf)); err != nil {
			return nil, badTopic(kerr.InvalidReplicationFactor, "%v", err)
		}
	}
	t := &metadata.Topic{Name: name, Configs: configs}
	if _, err := rand.Read(t.ID[:]); err != nil {
		return nil, err
	}
	for i, r := range replicas {
		t.Partitions = append(t.Partitions, metadata.Partition{ID: int32(i), Replicas: r, ISR: r, Leader: r[0]})
	}
	return t, nil
}

// createTopic proposes a new topic and waits for its local replicas.
func (b *Broker) createTopic(rc *Request, name string, partitions int32, rf int16, configs map[string]string) (*metadata.Topic, error) {
	t, err := b.planTopic(b.Meta.State(), name, partitions, rf, configs, nil)
	if err != nil {
		return nil, err
	}
	return t, b.proposeTopic(rc, t)
}

func (b *Broker) proposeTopic(rc *Request, t *metadata.Topic) error {
	if _, err := b.Meta.Propose(rc.Ctx, &metadata.Command{CreateTopic: t}); err != nil {
		return err
	}
	return b.Replicas.Await(rc.Ctx, t.Name)
}

// topicErrMessage is the message sent back with a topic-level error.
func topicErrMessage(err error) *string {
	var te *topicError
	if errors.As(err, &te) {
		return &te.msg
	}
	s := err.Error()
	return &s
}
