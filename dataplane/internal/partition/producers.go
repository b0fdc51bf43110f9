package partition

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/chronik-stream/chronik/controlplane/metadata"
	"github.com/chronik-stream/chronik/dataplane/internal/batch"
	"github.com/chronik-stream/chronik/dataplane/internal/producer"
)

// The producer table is saved on clean close as "producer.snapshot": the
// log end offset it covers, then the table. Open loads it and replays the
// batches written after it, so a crash only costs a replay of the tail.
const producerSnapshot = "producer.snapshot"

func (p *Partition) snapshotPath() string { return filepath.Join(p.data.Dir(), producerSnapshot) }

func (p *Partition) saveProducers(end int64) error {
	tb, err := p.producers.MarshalBinary()
	if err != nil {
		return err
	}
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(tb)), uint64(end))
	if err := metadata.WriteFileAtomic(p.snapshotPath(), append(b, tb...)); err != nil {
		return fmt.Errorf("save producer state: %w", err)
	}
	return nil
}

func (p *Partition) loadProducers() error {
	from := p.data.LogStartOffset()
	b, err := os.ReadFile(p.snapshotPath())
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read producer state: %w", err)
	case len(b) >= 8:
		at := int64(binary.BigEndian.Uint64(b))
		t := producer.NewTable()
		if at <= p.data.LogEndOffset() && at >= from && t.UnmarshalBinary(b[8:]) == nil {
			p.producers, from = t, at
		} else {
			p.log.Warn("ignoring producer state snapshot", "snapshot_offset", at, "log_end_offset", p.data.LogEndOffset())
		}
	}
	return p.replayProducers(from)
}

// replayProducers rebuilds producer state from batch headers in [from, end).
func (p *Partition) replayProducers(from int64) error {
	end := p.data.LogEndOffset()
	for from < end {
		chunk, err := p.data.Read(from, 1<<20, end)
		if err != nil {
			return fmt.Errorf("replay producer state at %d: %w", from, err)
		}
		buf := chunk.Bytes()
		chunk.Release()
		batches, _, err := batch.Split(buf)
		if err != nil || len(batches) == 0 {
			return fmt.Errorf("replay producer state at %d: %w", from, errors.Join(err, batch.ErrCorrupt))
		}
		for _, raw := range batches {
			h, err := batch.ParseHeader(raw)
			if err != nil {
				return fmt.Errorf("replay producer state at %d: %w", from, err)
			}
			if h.ProducerID >= 0 && !h.IsControl() {
				p.producers.Record(h.ProducerID, h.ProducerEpoch, producer.Batch{
					FirstSeq: h.BaseSequence, LastSeq: h.BaseSequence + h.LastOffsetDelta,
					FirstOffset: h.BaseOffset, LastOffset: h.LastOffset(), Timestamp: h.MaxTimestamp,
				})
			}
			from = h.NextOffset()
		}
	}
	return nil
}
