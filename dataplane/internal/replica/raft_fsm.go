package replica

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/chronik-stream/chronik/dataplane/internal/batch"
	"github.com/chronik-stream/chronik/dataplane/internal/partition"
	"github.com/chronik-stream/chronik/dataplane/internal/producer"
	"github.com/chronik-stream/chronik/dataplane/internal/storage"
)

// ErrBroken is the apply result of every entry after a replica failed to
// write one (a disk error): applying more would make its log differ from
// the others'. The replica stops leading; a human must look at it.
var ErrBroken = errors.New("replica: state machine stopped after a failed write")

// fsm is a partition group's state machine: the partition itself.
type fsm struct {
	g      *group
	p      *partition.Partition
	broken atomic.Bool

	// For tests and logs: how often a restore cut the log back, and how
	// many batches catch-up copied.
	truncations atomic.Int64
	copied      atomic.Int64
}

var _ raft.FSM = (*fsm)(nil)

// applyResult is the response of a batch entry.
type applyResult struct {
	res partition.AppendResult
	err error
}

// deleteResult is the response of a DeleteRecords entry.
type deleteResult struct {
	low int64
	err error
}

// Apply applies one committed entry on every replica alike.
func (f *fsm) Apply(l *raft.Log) any {
	if r := f.g.r.Load(); r != nil && r.State() != raft.Leader {
		defer f.g.cache.forget(l.Index)
	}
	kind, body, err := decodeEntry(l.Data)
	if err == nil && f.broken.Load() {
		err = ErrBroken
	}
	switch {
	case err != nil && kind == entryDelete:
		return deleteResult{err: err}
	case err != nil:
		return applyResult{err: err}
	case kind == entryDelete:
		low, err := f.p.DeleteRecords(int64(binary.BigEndian.Uint64(body)))
		f.check(l.Index, err)
		return deleteResult{low: low, err: err}
	}
	res, err := f.p.Apply(body, int32(l.Term))
	f.check(l.Index, err)
	if err == nil {
		f.p.SetHighWatermark(f.p.LogEndOffset())
	}
	return applyResult{res: res, err: err}
}

// check stops the state machine when an entry failed for a reason that
// need not be the same on the other replicas.
func (f *fsm) check(index uint64, err error) {
	if err == nil || deterministic(err) {
		return
	}
	if f.broken.CompareAndSwap(false, true) {
		f.g.log.Error("partition replica stopped applying its raft log", "raft_index", index, "err", err)
	}
}

// deterministic reports whether every replica fails an entry the same way:
// a refused producer sequence or a malformed batch, as opposed to I/O.
func deterministic(err error) bool {
	for _, e := range []error{
		producer.ErrOutOfOrder, producer.ErrInvalidEpoch,
		batch.ErrCorrupt, batch.ErrTooShort, batch.ErrUnsupportedMagic, batch.ErrInvalidRecord,
		storage.ErrOffsetOutOfRange, ErrCorrupt,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Snapshot records where the log ends; it runs between two applies.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	end, start, prods, err := f.p.SnapshotState()
	if err != nil {
		return nil, err
	}
	return &fsmSnapshot{f: f, rec: snapRecord{End: end, Start: start, Producers: prods}}, nil
}

type fsmSnapshot struct {
	f   *fsm
	rec snapRecord
}

// Persist makes the log durable up to the snapshot's end, then writes the
// small record: once the snapshot exists, Raft may drop the entries that
// wrote that data.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.f.p.Sync(s.f.g.ctx, s.rec.End); err != nil {
		sink.Cancel()
		return fmt.Errorf("snapshot %s: sync log to %d: %w", s.f.g.name, s.rec.End, err)
	}
	if _, err := sink.Write(s.rec.encode()); err != nil {
		sink.Cancel()
		return fmt.Errorf("snapshot %s: %w", s.f.g.name, err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() {}

// maxSnapshotRecord bounds what Restore reads: the producer table holds at
// most a few dozen bytes per producer.
const maxSnapshotRecord = 256 << 20

// Restore brings the partition to a snapshot's state: at start-up the log
// is cut back to the snapshot's end, on a lagging replica the missing
// range is copied from another replica.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxSnapshotRecord+1))
	if err != nil {
		return fmt.Errorf("restore %s: read snapshot: %w", f.g.name, err)
	}
	rec, err := decodeSnapRecord(b)
	if err != nil {
		return fmt.Errorf("restore %s: %w", f.g.name, err)
	}
	if err := f.restore(rec); err != nil {
		return fmt.Errorf("restore %s to offset %d: %w", f.g.name, rec.End, err)
	}
	return nil
}

func (f *fsm) restore(rec snapRecord) error {
	p := f.p
	if leo := p.LogEndOffset(); leo > rec.End {
		f.g.log.Info("cutting log back to the raft snapshot", "log_end_offset", leo, "snapshot_end_offset", rec.End)
		if err := p.TruncateTo(rec.End); err != nil {
			return err
		}
		f.truncations.Add(1)
	}
	if rec.Start > p.LogEndOffset() {
		if err := p.ResetTo(rec.Start); err != nil {
			return err
		}
	}
	if leo := p.LogEndOffset(); leo < rec.End {
		f.g.log.Info("copying missing data to catch up with a raft snapshot", "log_end_offset", leo, "snapshot_end_offset", rec.End)
		if err := f.catchUp(rec.End); err != nil {
			return err
		}
	}
	if err := p.RestoreProducers(rec.Producers); err != nil {
		return err
	}
	p.SetHighWatermark(p.LogEndOffset())
	if rec.Start > p.LogStartOffset() {
		if _, err := p.DeleteRecords(rec.Start); err != nil {
			return err
		}
	}
	return nil
}

// catchUp copies [log end, end) from the leader or any other replica.
func (f *fsm) catchUp(end int64) error {
	for f.p.LogEndOffset() < end {
		var errs []error
		progressed := false
		for _, id := range f.g.sources() {
			ok, err := f.copyFrom(id, end)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ok {
				progressed = true
				break
			}
		}
		if err := f.g.ctx.Err(); err != nil {
			return err
		}
		if !progressed {
			return fmt.Errorf("no replica could provide offsets %d to %d: %w", f.p.LogEndOffset(), end, errors.Join(errs...))
		}
	}
	return nil
}

// copyFrom reads one chunk from node id at the local log end and appends
// the batches below end; ok reports progress.
func (f *fsm) copyFrom(id int32, end int64) (ok bool, err error) {
	rr := f.g.rr
	addr, found := rr.addr(id)
	if !found {
		return false, fmt.Errorf("node %d: no raft address", id)
	}
	leo := f.p.LogEndOffset()
	ctx, cancel := context.WithTimeout(f.g.ctx, rr.cfg.RPCTimeout)
	defer cancel()
	req := readRequest{Topic: f.g.k.topic, Partition: f.g.k.index, Offset: leo, MaxBytes: int32(rr.cfg.ReadBytes)}
	b, err := rr.cfg.Mux.Call(ctx, addr, methodRead, req.encode())
	if err != nil {
		return false, fmt.Errorf("read from node %d at %d: %w", id, leo, err)
	}
	resp, err := decodeReadResponse(b)
	if err != nil {
		return false, fmt.Errorf("read from node %d at %d: %w", id, leo, err)
	}
	if resp.Start > leo {
		// That replica no longer has what is missing here (retention or
		// DeleteRecords): continue from where its log starts.
		if err := f.p.ResetTo(min(resp.Start, end)); err != nil {
			return false, err
		}
		return true, nil
	}
	recs, err := batchesBelow(resp.Records, end)
	if err != nil {
		return false, fmt.Errorf("read from node %d at %d: %w", id, leo, err)
	}
	if len(recs) == 0 {
		return false, fmt.Errorf("node %d has nothing at %d (high watermark %d)", id, leo, resp.End)
	}
	if err := f.p.AppendCopy(recs); err != nil {
		return false, err
	}
	for it := batch.NewIter(recs); ; {
		if _, ok := it.Next(); !ok {
			break
		}
		f.copied.Add(1)
	}
	return true, nil
}

// batchesBelow returns the leading whole batches of recs that end before
// end; a batch that straddles end means the logs disagree.
func batchesBelow(recs []byte, end int64) ([]byte, error) {
	it := batch.NewIter(recs)
	n := 0
	for b, ok := it.Next(); ok; b, ok = it.Next() {
		h, err := batch.ParseHeader(b)
		if err != nil {
			return nil, err
		}
		if h.BaseOffset >= end {
			break
		}
		if h.NextOffset() > end {
			return nil, fmt.Errorf("%w: batch %d-%d crosses the snapshot end %d", ErrCorrupt, h.BaseOffset, h.LastOffset(), end)
		}
		n += len(b)
	}
	if it.Err() != nil {
		return nil, it.Err()
	}
	return recs[:n], nil
}

// sources lists the nodes to copy data from: the leader first, then the
// other replicas.
func (g *group) sources() []int32 {
	self := g.rr.cfg.NodeID
	var ids []int32
	if r := g.r.Load(); r != nil {
		if _, lid := r.LeaderWithID(); lid != "" {
			if id, ok := nodeID(lid); ok && id != self {
				ids = append(ids, id)
			}
		}
	}
	if mp := g.rr.metaPartition(g); mp != nil {
		for _, id := range mp.Replicas {
			if id != self && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// maxReadBytes caps one replica.read answer.
const maxReadBytes = 16 << 20

// serveRead answers replica.read from the local replica's log, up to its
// high watermark: committed data, identical on every replica that has it.
func (rr *RaftReplicas) serveRead(ctx context.Context, from string, req []byte) ([]byte, error) {
	q, err := decodeReadRequest(req)
	if err != nil {
		return nil, err
	}
	p := rr.m.Partition(q.Topic, q.Partition)
	if p == nil {
		return nil, fmt.Errorf("read %s/%d: %w", q.Topic, q.Partition, ErrUnknownPartition)
	}
	resp := readResponse{Start: p.LogStartOffset(), End: p.HighWatermark()}
	if q.Offset < resp.Start || q.Offset >= resp.End {
		return resp.encode(), nil
	}
	chunk, err := p.Read(q.Offset, int(min(q.MaxBytes, maxReadBytes)))
	switch {
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		resp.Start = max(p.LogStartOffset(), resp.Start)
		return resp.encode(), nil
	case err != nil:
		return nil, fmt.Errorf("read %s/%d at %d: %w", q.Topic, q.Partition, q.Offset, err)
	}
	resp.Records, err = chunk.ReadAll()
	chunk.Release()
	if err != nil {
		return nil, fmt.Errorf("read %s/%d at %d: %w", q.Topic, q.Partition, q.Offset, err)
	}
	return resp.encode(), nil
}
