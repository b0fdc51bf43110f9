package partition

// What the Raft state machine of a replicated partition needs beyond Apply
// (see replica/raft_fsm.go): a consistent view of the state a snapshot
// records, and the means to bring the log back to a snapshot's state.
// These are additive and only used in cluster mode.

import (
	"errors"
	"fmt"

	"github.com/chronik-stream/chronik/dataplane/internal/batch"
	"github.com/chronik-stream/chronik/dataplane/internal/producer"
)

// SnapshotState returns the log end offset, the log start offset and the
// encoded producer table, all as of the same instant.
func (p *Partition) SnapshotState() (end, start int64, producers []byte, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, 0, nil, ErrClosed
	}
	tb, err := p.producers.MarshalBinary()
	if err != nil {
		return 0, 0, nil, fmt.Errorf("snapshot %s/%d: %w", p.Topic, p.Index, err)
	}
	return p.data.LogEndOffset(), p.data.LogStartOffset(), tb, nil
}

// TruncateTo removes every batch at or above off, which must be a batch
// boundary, and lowers the high watermark to it. When off is at or below
// the log start the log restarts empty at off.
func (p *Partition) TruncateTo(off int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	var err error
	if off <= p.data.LogStartOffset() {
		err = p.data.TruncateAll(off)
	} else {
		err = p.data.TruncateTo(off)
	}
	if err != nil {
		return fmt.Errorf("truncate %s/%d to %d: %w", p.Topic, p.Index, off, err)
	}
	p.lowerHighWatermark(off)
	return nil
}

// ResetTo drops the whole log and restarts it, empty, at start.
func (p *Partition) ResetTo(start int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if err := p.data.TruncateAll(start); err != nil {
		return fmt.Errorf("reset %s/%d to %d: %w", p.Topic, p.Index, start, err)
	}
	p.producers = producer.NewTable()
	p.lowerHighWatermark(start)
	return nil
}

func (p *Partition) lowerHighWatermark(off int64) {
	for {
		cur := p.hwm.Load()
		if cur <= off || p.hwm.CompareAndSwap(cur, off) {
			return
		}
	}
}

// ErrNotContiguous means batches copied from another replica do not start
// at this replica's log end offset.
var ErrNotContiguous = errors.New("partition: copied batches do not continue the log")

// AppendCopy appends whole batches read from another replica's log, keeping
// their base offsets and leader epochs, so the bytes stored are identical.
// The first batch must start at the log end offset. The producer table is
// not updated: the caller restores it from the snapshot it catches up to.
func (p *Partition) AppendCopy(batches []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	it := batch.NewIter(batches)
	for b, ok := it.Next(); ok; b, ok = it.Next() {
		h, err := batch.ParseHeader(b)
		if err != nil {
			return fmt.Errorf("copy into %s/%d: %w", p.Topic, p.Index, err)
		}
		if len(b) != h.Size() || batch.Checksum(b) != h.CRC {
			return fmt.Errorf("copy into %s/%d: batch at %d: %w", p.Topic, p.Index, h.BaseOffset, batch.ErrCorrupt)
		}
		if end := p.data.LogEndOffset(); h.BaseOffset != end {
			return fmt.Errorf("copy into %s/%d: batch at %d, log end %d: %w", p.Topic, p.Index, h.BaseOffset, end, ErrNotContiguous)
		}
		if _, _, err := p.data.Append(b, h.PartitionLeaderEpoch); err != nil {
			return fmt.Errorf("copy into %s/%d: %w", p.Topic, p.Index, err)
		}
	}
	if it.Err() != nil || len(it.Rest()) != 0 {
		return fmt.Errorf("copy into %s/%d: %w", p.Topic, p.Index, errors.Join(it.Err(), batch.ErrTooShort))
	}
	p.signal()
	return nil
}

// RestoreProducers replaces the producer table with one encoded by
// SnapshotState.
func (p *Partition) RestoreProducers(b []byte) error {
	t := producer.NewTable()
	if err := t.UnmarshalBinary(b); err != nil {
		return fmt.Errorf("restore producers of %s/%d: %w", p.Topic, p.Index, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.producers = t
	return nil
}
