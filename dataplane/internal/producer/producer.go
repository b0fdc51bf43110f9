// Package producer tracks idempotent producers per partition: for each
// producer id its epoch and the sequence ranges of its last five batches, so
// that a retried batch is answered with its original offset instead of being
// written twice, and a gap or a fenced epoch is refused.
//
// A Table is owned by the partition's single writer (the partition append
// path, or the Raft state machine in cluster mode); it is not safe for
// concurrent use.
package producer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// RetainedBatches is how many recent batches per producer are remembered,
// as in Kafka (max.in.flight.requests.per.connection <= 5).
const RetainedBatches = 5

// Outcomes of Check; each maps to a Kafka error code.
var (
	ErrOutOfOrder   = errors.New("producer: out of order sequence number")    // OUT_OF_ORDER_SEQUENCE_NUMBER
	ErrInvalidEpoch = errors.New("producer: invalid producer epoch")          // INVALID_PRODUCER_EPOCH
	ErrCorrupt      = errors.New("producer: corrupt producer state snapshot") // never sent to clients
)

// Batch identifies one appended batch of a producer.
type Batch struct {
	FirstSeq    int32
	LastSeq     int32
	FirstOffset int64
	LastOffset  int64
	Timestamp   int64
}

type entry struct {
	epoch   int16
	batches []Batch // oldest first, at most RetainedBatches
}

// Table is the producer state of one partition.
type Table struct {
	m map[int64]*entry
}

// NewTable returns an empty table.
func NewTable() *Table { return &Table{m: map[int64]*entry{}} }

// Len is the number of producers tracked.
func (t *Table) Len() int { return len(t.m) }

// Check decides what to do with a batch from producer pid at epoch with
// sequences firstSeq..lastSeq. It returns (dup, nil) with dup set when the
// batch was already written, (nil, nil) when it may be appended, or an error.
func (t *Table) Check(pid int64, epoch int16, firstSeq, lastSeq int32) (*Batch, error) {
	if pid < 0 {
		return nil, nil
	}
	e := t.m[pid]
	switch {
	case e == nil:
		if firstSeq != 0 {
			return nil, fmt.Errorf("%w: producer %d is new here but starts at sequence %d", ErrOutOfOrder, pid, firstSeq)
		}
		return nil, nil
	case epoch < e.epoch:
		return nil, fmt.Errorf("%w: producer %d epoch %d is older than %d", ErrInvalidEpoch, pid, epoch, e.epoch)
	case epoch > e.epoch:
		if firstSeq != 0 {
			return nil, fmt.Errorf("%w: producer %d new epoch %d starts at sequence %d", ErrOutOfOrder, pid, epoch, firstSeq)
		}
		return nil, nil
	}
	for i := range e.batches {
		if b := &e.batches[i]; b.FirstSeq == firstSeq && b.LastSeq == lastSeq {
			dup := *b
			return &dup, nil
		}
	}
	if len(e.batches) == 0 {
		return nil, nil
	}
	last := e.batches[len(e.batches)-1].LastSeq
	if firstSeq != nextSeq(last) {
		return nil, fmt.Errorf("%w: producer %d expected sequence %d, got %d", ErrOutOfOrder, pid, nextSeq(last), firstSeq)
	}
	return nil, nil
}

// nextSeq follows Kafka's wrap of sequence numbers at MaxInt32.
func nextSeq(s int32) int32 {
	if s == math.MaxInt32 {
		return 0
	}
	return s + 1
}

// Record notes an appended batch. Call it only after Check allowed it.
func (t *Table) Record(pid int64, epoch int16, b Batch) {
	if pid < 0 {
		return
	}
	e := t.m[pid]
	if e == nil || epoch != e.epoch {
		e = &entry{epoch: epoch}
		t.m[pid] = e
	}
	if len(e.batches) == RetainedBatches {
		copy(e.batches, e.batches[1:])
		e.batches = e.batches[:RetainedBatches-1]
	}
	e.batches = append(e.batches, b)
}

// Epoch returns the current epoch of pid, or -1 when unknown.
func (t *Table) Epoch(pid int64) int16 {
	if e := t.m[pid]; e != nil {
		return e.epoch
	}
	return -1
}

// Producer is a read-only view of one producer, for DescribeProducers.
type Producer struct {
	ID           int64
	Epoch        int16
	LastSequence int32
	LastOffset   int64
	LastTime     int64
}

// Producers lists the tracked producers.
func (t *Table) Producers() []Producer {
	out := make([]Producer, 0, len(t.m))
	for id, e := range t.m {
		p := Producer{ID: id, Epoch: e.epoch, LastSequence: -1, LastOffset: -1, LastTime: -1}
		if n := len(e.batches); n > 0 {
			b := e.batches[n-1]
			p.LastSequence, p.LastOffset, p.LastTime = b.LastSeq, b.LastOffset, b.Timestamp
		}
		out = append(out, p)
	}
	return out
}

// ExpireBefore forgets producers whose last batch is below offset (their
// data was removed by retention or DeleteRecords).
func (t *Table) ExpireBefore(offset int64) {
	for id, e := range t.m {
		if n := len(e.batches); n == 0 || e.batches[n-1].LastOffset < offset {
			delete(t.m, id)
		}
	}
}

// MarshalBinary encodes the table for a snapshot.
func (t *Table) MarshalBinary() ([]byte, error) {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(t.m)))
	for id, e := range t.m {
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint16(b, uint16(e.epoch))
		b = append(b, byte(len(e.batches)))
		for _, x := range e.batches {
			b = binary.BigEndian.AppendUint32(b, uint32(x.FirstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(x.LastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(x.FirstOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(x.LastOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(x.Timestamp))
		}
	}
	return b, nil
}

// UnmarshalBinary replaces the table with a snapshot's content.
func (t *Table) UnmarshalBinary(b []byte) error {
	const batchSize = 4 + 4 + 8 + 8 + 8
	if len(b) < 4 {
		return ErrCorrupt
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	m := make(map[int64]*entry, min(n, 1<<16))
	for i := uint32(0); i < n; i++ {
		if len(b) < 11 {
			return ErrCorrupt
		}
		id := int64(binary.BigEndian.Uint64(b))
		e := &entry{epoch: int16(binary.BigEndian.Uint16(b[8:]))}
		cnt := int(b[10])
		b = b[11:]
		if cnt > RetainedBatches || len(b) < cnt*batchSize {
			return ErrCorrupt
		}
		for j := 0; j < cnt; j++ {
			e.batches = append(e.batches, Batch{
				FirstSeq:    int32(binary.BigEndian.Uint32(b)),
				LastSeq:     int32(binary.BigEndian.Uint32(b[4:])),
				FirstOffset: int64(binary.BigEndian.Uint64(b[8:])),
				LastOffset:  int64(binary.BigEndian.Uint64(b[16:])),
				Timestamp:   int64(binary.BigEndian.Uint64(b[24:])),
			})
			b = b[batchSize:]
		}
		m[id] = e
	}
	if len(b) != 0 {
		return ErrCorrupt
	}
	t.m = m
	return nil
}
