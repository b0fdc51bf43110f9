// Package partition is one local partition replica: the log, the producer
// table, the high watermark and the append signal that fetches wait on.
//
// Appends go through Apply, which is the partition's state machine step:
// validate producer sequences, assign offsets, write. In single-node mode
// the Kafka produce path calls it directly; in cluster mode the partition's
// Raft group calls it for each committed entry, on every replica alike.
package partition

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chronik-stream/chronik/dataplane/internal/batch"
	"github.com/chronik-stream/chronik/dataplane/internal/producer"
	"github.com/chronik-stream/chronik/dataplane/internal/storage"
)

// Errors of Apply that map to Kafka codes.
var (
	ErrMessageTooLarge = errors.New("partition: batch larger than max.message.bytes") // MESSAGE_TOO_LARGE
	ErrClosed          = errors.New("partition: closed")
)

// Config is a partition's tunables, from topic configs over broker defaults.
type Config struct {
	Storage           storage.Config
	MaxMessageBytes   int32
	MinInsyncReplicas int32
}

// Partition is one local replica.
type Partition struct {
	Topic string
	Index int32
	log   *slog.Logger

	mu        sync.Mutex // the single writer: Apply, TruncateAll, snapshots
	data      *storage.Log
	producers *producer.Table
	closed    bool

	hwm      atomic.Int64
	maxBytes atomic.Int32
	minISR   atomic.Int32

	sigMu sync.Mutex
	sig   chan struct{} // closed on the next append or HWM move
}

// Open opens (and recovers) the partition's log in cfg.Storage.Dir.
func Open(topic string, index int32, cfg Config, logger *slog.Logger) (*Partition, error) {
	lg := logger.With("topic", topic, "partition", index)
	cfg.Storage.Logger = lg
	data, err := storage.Open(cfg.Storage)
	if err != nil {
		return nil, fmt.Errorf("open %s/%d: %w", topic, index, err)
	}
	p := &Partition{Topic: topic, Index: index, log: lg, data: data, producers: producer.NewTable(), sig: make(chan struct{})}
	p.setLimits(cfg)
	if err := p.loadProducers(); err != nil {
		data.Close()
		return nil, fmt.Errorf("open %s/%d: %w", topic, index, err)
	}
	p.hwm.Store(data.LogEndOffset())
	return p, nil
}

func (p *Partition) setLimits(cfg Config) {
	p.maxBytes.Store(cfg.MaxMessageBytes)
	p.minISR.Store(max(cfg.MinInsyncReplicas, 1))
}

// UpdateConfig applies changed topic configs to the live partition.
func (p *Partition) UpdateConfig(cfg Config) {
	p.setLimits(cfg)
	p.data.UpdateConfig(cfg.Storage)
}

// MinInsyncReplicas is the topic's min.insync.replicas.
func (p *Partition) MinInsyncReplicas() int32 { return p.minISR.Load() }

// Validate checks batches a producer sent before they are proposed: framing,
// CRC and size. It does not look at producer sequences (Apply does).
func (p *Partition) Validate(records []byte) error {
	batches, rest, err := batch.Split(records)
	if err != nil {
		return err
	}
	if len(rest) != 0 || len(batches) == 0 {
		return fmt.Errorf("%w: %d trailing bytes", batch.ErrCorrupt, len(rest))
	}
	limit := p.maxBytes.Load()
	for _, b := range batches {
		if limit > 0 && len(b) > int(limit) {
			return fmt.Errorf("%w: %d > %d", ErrMessageTooLarge, len(b), limit)
		}
		if err := batch.Validate(b); err != nil {
			return err
		}
	}
	return nil
}

// AppendResult says where Apply put a batch set.
type AppendResult struct {
	BaseOffset int64
	LastOffset int64
	// Duplicate is set when an idempotent retry was answered from the
	// producer table and nothing was written.
	Duplicate      bool
	LogStartOffset int64
	AppendTime     time.Time
}

// Apply is the state machine step for one record batch: check producer
// sequences, assign offsets and append. The batch must have passed Validate.
// It does not fsync.
func (p *Partition) Apply(records []byte, leaderEpoch int32) (AppendResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return AppendResult{}, ErrClosed
	}
	res, err := p.applyLocked(records, leaderEpoch)
	if err == nil && !res.Duplicate {
		p.signal()
	}
	return res, err
}

func (p *Partition) applyLocked(records []byte, leaderEpoch int32) (AppendResult, error) {
	now := time.Now()
	h, err := batch.ParseHeader(records)
	if err != nil {
		return AppendResult{}, err
	}
	lastSeq := h.BaseSequence + h.LastOffsetDelta
	dup, err := p.producers.Check(h.ProducerID, h.ProducerEpoch, h.BaseSequence, lastSeq)
	if err != nil {
		return AppendResult{}, err
	}
	if dup != nil {
		return AppendResult{BaseOffset: dup.FirstOffset, LastOffset: dup.LastOffset, Duplicate: true,
			LogStartOffset: p.data.LogStartOffset(), AppendTime: now}, nil
	}
	first, last, err := p.data.Append(records, leaderEpoch)
	if err != nil {
		return AppendResult{}, fmt.Errorf("append %s/%d: %w", p.Topic, p.Index, err)
	}
	p.producers.Record(h.ProducerID, h.ProducerEpoch, producer.Batch{
		FirstSeq: h.BaseSequence, LastSeq: lastSeq, FirstOffset: first, LastOffset: last, Timestamp: h.MaxTimestamp,
	})
	return AppendResult{BaseOffset: first, LastOffset: last, LogStartOffset: p.data.LogStartOffset(), AppendTime: now}, nil
}

// Sync returns once every offset below upTo is on disk (group commit).
func (p *Partition) Sync(ctx context.Context, upTo int64) error {
	return p.data.Sync(ctx, upTo)
}

// SetHighWatermark moves the high watermark forward (never back) and wakes
// waiting fetches.
func (p *Partition) SetHighWatermark(hw int64) {
	for {
		cur := p.hwm.Load()
		if hw <= cur {
			return
		}
		if p.hwm.CompareAndSwap(cur, hw) {
			p.sigMu.Lock()
			p.signalLocked()
			p.sigMu.Unlock()
			return
		}
	}
}

// HighWatermark is the first offset not visible to consumers.
func (p *Partition) HighWatermark() int64 { return p.hwm.Load() }

// LogEndOffset is the next offset to be assigned.
func (p *Partition) LogEndOffset() int64 { return p.data.LogEndOffset() }

// LogStartOffset is the first offset still stored.
func (p *Partition) LogStartOffset() int64 { return p.data.LogStartOffset() }

// Changed returns a channel closed at the next append or high-watermark move.
func (p *Partition) Changed() <-chan struct{} {
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	return p.sig
}

func (p *Partition) signal() {
	p.sigMu.Lock()
	p.signalLocked()
	p.sigMu.Unlock()
}

func (p *Partition) signalLocked() {
	close(p.sig)
	p.sig = make(chan struct{})
}

// Read returns whole batches from offset, up to the high watermark (or the
// log end when uncommitted is set, for followers and tests).
func (p *Partition) Read(offset int64, maxBytes int) (storage.Chunk, error) {
	return p.data.Read(offset, maxBytes, p.hwm.Load())
}

// OffsetForTimestamp is ListOffsets by time.
func (p *Partition) OffsetForTimestamp(ts int64) (int64, int64, bool) {
	return p.data.OffsetForTimestamp(ts)
}

// MaxTimestamp returns the offset and time of the largest timestamp.
func (p *Partition) MaxTimestamp() (int64, int64) { return p.data.MaxTimestamp() }

// OffsetForLeaderEpoch answers OffsetForLeaderEpoch from the epoch cache.
func (p *Partition) OffsetForLeaderEpoch(epoch int32) (int32, int64) {
	return p.data.OffsetForLeaderEpoch(epoch)
}

// DeleteRecords moves the log start offset to off (<= high watermark).
func (p *Partition) DeleteRecords(off int64) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if off == -1 {
		off = p.hwm.Load()
	}
	if off > p.hwm.Load() || off < 0 {
		return 0, storage.ErrOffsetOutOfRange
	}
	if off > p.data.LogStartOffset() {
		if err := p.data.SetLogStartOffset(off); err != nil {
			return 0, err
		}
		p.producers.ExpireBefore(off)
	}
	return p.data.LogStartOffset(), nil
}

// EnforceRetention removes whole segments past retention.
func (p *Partition) EnforceRetention() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.data.EnforceRetention(); err != nil {
		return fmt.Errorf("retention %s/%d: %w", p.Topic, p.Index, err)
	}
	p.producers.ExpireBefore(p.data.LogStartOffset())
	return nil
}

// Size is the bytes stored.
func (p *Partition) Size() int64 { return p.data.Size() }

// Close saves producer state and closes the log.
func (p *Partition) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	end := p.data.LogEndOffset()
	if err := p.data.Close(); err != nil {
		return fmt.Errorf("close %s/%d: %w", p.Topic, p.Index, err)
	}
	return p.saveProducers(end)
}

// Delete closes the partition and removes its files.
func (p *Partition) Delete() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	return p.data.Delete()
}
