package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/chronik-stream/chronik/dataplane/internal/group"
	"github.com/chronik-stream/chronik/dataplane/internal/partition"
)

// errOffsetsNotHosted is returned when a __consumer_offsets partition is
// not hosted here (any more).
var errOffsetsNotHosted = errors.New("kafka: offsets partition not hosted here")

// groupLog is the group coordinator's view of __consumer_offsets: its
// partitions, written through the same path as any produce (appended and
// fsynced in single-node mode, committed by Raft in cluster mode).
type groupLog struct {
	r Replicas
}

// NewGroupLog returns the group.OffsetLog over the __consumer_offsets
// partitions of r.
func NewGroupLog(r Replicas) group.OffsetLog { return &groupLog{r: r} }

func (l *groupLog) part(p int32) (*partition.Partition, error) {
	part := l.r.Partition(OffsetsTopic, p)
	if part == nil {
		return nil, fmt.Errorf("%s/%d: %w", OffsetsTopic, p, errOffsetsNotHosted)
	}
	return part, nil
}

// Append writes batch with acks=-1 and returns once it is durable.
func (l *groupLog) Append(ctx context.Context, p int32, batch []byte) error {
	part, err := l.part(p)
	if err != nil {
		return err
	}
	if leader, _ := l.r.IsLeader(part); !leader {
		return fmt.Errorf("%s/%d: %w", OffsetsTopic, p, kerr.NotLeaderForPartition)
	}
	wait, err := l.r.Produce(ctx, part, batch, -1)
	if err != nil {
		return fmt.Errorf("append to %s/%d: %w", OffsetsTopic, p, err)
	}
	if _, err := wait(ctx); err != nil {
		return fmt.Errorf("append to %s/%d: %w", OffsetsTopic, p, err)
	}
	return nil
}

// Read returns whole batches from offset up to the high watermark.
func (l *groupLog) Read(p int32, offset int64, maxBytes int) ([]byte, error) {
	part, err := l.part(p)
	if err != nil {
		return nil, err
	}
	chunk, err := part.Read(offset, maxBytes)
	if err != nil {
		return nil, fmt.Errorf("read %s/%d at %d: %w", OffsetsTopic, p, offset, err)
	}
	defer chunk.Release()
	b, err := chunk.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read %s/%d at %d: %w", OffsetsTopic, p, offset, err)
	}
	return b, nil
}

// Bounds returns the log start offset and high watermark.
func (l *groupLog) Bounds(p int32) (int64, int64, error) {
	part, err := l.part(p)
	if err != nil {
		return 0, 0, err
	}
	return part.LogStartOffset(), part.HighWatermark(), nil
}

// DeleteRecords moves the log start offset through the write path.
func (l *groupLog) DeleteRecords(ctx context.Context, p int32, offset int64) error {
	part, err := l.part(p)
	if err != nil {
		return err
	}
	if _, err := l.r.DeleteRecords(ctx, part, offset); err != nil {
		return fmt.Errorf("delete records of %s/%d below %d: %w", OffsetsTopic, p, offset, err)
	}
	return nil
}
