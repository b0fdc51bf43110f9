// Package storage is one partition's durable log, in Kafka's own on-disk
// shape.
//
// # Layout
//
// A partition directory holds segments named after their base offset:
//
//	00000000000000000000.log        record batches, verbatim
//	00000000000000000000.index      sparse offset index: uint32 relOffset, uint32 position
//	00000000000000000000.timeindex  sparse time index: int64 timestamp, uint32 relOffset
//	log-start-offset-checkpoint     DeleteRecords' log start offset
//	recovery-point-offset-checkpoint  segments below it are known to be fsynced
//	leader-epoch-checkpoint         leader epoch -> start offset
//	.clean-shutdown                 written by Close, removed by Open
//
// Batches are stored exactly as the producer sent them (compressed or not),
// with only the base offset and the partition leader epoch rewritten; both
// sit outside the CRC. An offset index entry names the base offset of the
// batch at that position, and is added once more than IndexIntervalBytes of
// log were written since the previous entry. A time index entry records the
// segment's largest timestamp so far and the last offset of the batch that
// carried it; a final entry is written when the segment is rolled or the log
// is closed, so the last entry is the segment's largest timestamp.
//
// # Durability
//
// Append writes to the page cache only. Sync waits until a flusher goroutine
// has fsynced everything below an offset; all waiters of a round share one
// fsync (group commit). Rolled segments and new directory entries are
// fsynced by the next round, which then advances the recovery point.
// Between rounds the flusher writes out what lies more than
// CachedTailBytes behind the log's end and drops it from the page cache
// (cache.go); reads of it then go to disk.
//
// Open after a clean Close trusts the indexes and only re-reads the active
// segment past its last index entry. After an unclean stop it scans every
// segment from the recovery point, checking framing, offsets and CRC-32C of
// each batch, cuts the log at the first bad or partial batch and rebuilds
// the indexes and the leader epoch cache of what it scanned.
//
// # Concurrency
//
// One goroutine appends at a time (Append and TruncateAll are the writer's
// calls); Read, Sync, the offset queries, SetLogStartOffset and
// EnforceRetention may run from any goroutine at the same time. A Chunk
// holds a reference on its segment, so retention may delete the file while
// the chunk is read; Release drops the reference.
//
// Lock order: writeMu -> flushMu -> ckMu -> mu -> segment.idxMu; sync.mu is
// taken alone.
package storage
