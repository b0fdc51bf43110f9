package kafka

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/chronik-stream/chronik/controlplane/metadata"
	"github.com/chronik-stream/chronik/dataplane/internal/batch"
	"github.com/chronik-stream/chronik/dataplane/internal/group"
	"github.com/chronik-stream/chronik/dataplane/internal/partition"
	"github.com/chronik-stream/chronik/dataplane/internal/producer"
	"github.com/chronik-stream/chronik/dataplane/internal/storage"
)

// Replicas gives handlers the partitions this node hosts.
type Replicas interface {
	// Partition returns the local replica, or nil when not hosted here.
	Partition(topic string, index int32) *partition.Partition
	// Produce submits one validated batch to the partition's write path
	// (appended at once in single-node mode, proposed to Raft in cluster
	// mode) in the caller's order, and returns a wait that yields where it
	// was written once it is as durable as acks asks. It must not keep
	// records once it returns: they are part of a request buffer that the
	// next request reuses (body.go).
	Produce(ctx context.Context, p *partition.Partition, records []byte, acks int16) (wait func(context.Context) (partition.AppendResult, error), err error)
	// IsLeader reports whether this node leads the partition, with its epoch.
	IsLeader(p *partition.Partition) (bool, int32)
	// DeleteRecords moves the log start offset through the write path.
	DeleteRecords(ctx context.Context, p *partition.Partition, offset int64) (int64, error)
	// Await returns once the replicas of topic that this node hosts are
	// open, or ctx ends.
	Await(ctx context.Context, topic string) error
}

// Broker holds what the handlers need to answer requests.
type Broker struct {
	NodeID   int32
	Meta     metadata.Service
	Replicas Replicas
	Log      *slog.Logger

	AutoCreateTopics         bool
	DefaultPartitions        int32
	DefaultReplicationFactor int16
	// ElectedEpochs is set in cluster mode, where a leader epoch is the
	// Raft term its leader was elected in, 1 or more. Epoch 0 there is the
	// guess made at creation, before the first election is reported:
	// Metadata answers it as unknown (-1), so clients do not pin requests
	// to an epoch no leader ever had and get fenced once it is reported.
	ElectedEpochs bool
	// Assign chooses replicas for new partitions.
	Assign func(st *metadata.State, partitions, rf int) ([][]int32, error)
	// Groups coordinates the consumer groups of the __consumer_offsets
	// partitions this node leads; nil answers COORDINATOR_NOT_AVAILABLE.
	Groups *group.Coordinator

	sessions fetchSessions

	pidMu           sync.Mutex
	pidNext, pidEnd int64 // the reserved block of producer ids
}

func (rc *Request) broker() *Broker { return rc.conn.s.cfg.Broker }

// errCode maps an error from the layers below to a Kafka error code.
func errCode(err error) int16 {
	var ke *kerr.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ke):
		return ke.Code
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, partition.ErrMessageTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, batch.ErrUnsupportedMagic):
		return kerr.UnsupportedForMessageFormat.Code
	case errors.Is(err, batch.ErrCorrupt), errors.Is(err, batch.ErrTooShort):
		return kerr.CorruptMessage.Code
	case errors.Is(err, batch.ErrInvalidRecord):
		return kerr.InvalidRecord.Code
	case errors.Is(err, producer.ErrOutOfOrder):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, producer.ErrInvalidEpoch):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, metadata.ErrTopicExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, metadata.ErrUnknownTopic), errors.Is(err, metadata.ErrUnknownPartition):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, metadata.ErrInvalidPartitions):
		return kerr.InvalidPartitions.Code
	case errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code
	case errors.Is(err, partition.ErrClosed):
		return kerr.NotLeaderForPartition.Code
	default:
		return kerr.UnknownServerError.Code
	}
}

// validTopicName follows Kafka's rules: 1-249 characters of [a-zA-Z0-9._-],
// not "." or "..".
func validTopicName(name string) bool {
	if name == "" || len(name) > 249 || name == "." || name == ".." {
		return false
	}
	return strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}) < 0
}
