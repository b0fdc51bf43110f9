package replica

import (
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// sparseFS is raft-wal's file system without preallocation: a new
// segment file occupies only what has been written to it. raft-wal reads
// a segment up to its last commit frame and treats the end of the file
// like the zeros after it, so nothing else changes.
//
// That lets segments be large without reserving their size on disk for
// every partition a broker hosts. Large segments matter under load:
// each rotation commits the WAL's metadata database (two fsyncs), creates
// a file and fsyncs its directory, and blocks the next append until done;
// with 1 MiB entries and 2 MiB segments that was every other append.
type sparseFS struct{ *fs.FS }

// Create creates the file without preallocating size bytes.
func (s sparseFS) Create(dir, name string, _ uint64) (types.WritableFile, error) {
	f, err := s.FS.Create(dir, name, 0)
	if err != nil {
		return nil, err
	}
	return writeDirect(f), nil
}

// OpenWriter opens a segment for appending (the tail segment at start-up).
func (s sparseFS) OpenWriter(dir, name string) (types.WritableFile, error) {
	f, err := s.FS.OpenWriter(dir, name)
	if err != nil {
		return nil, err
	}
	return writeDirect(f), nil
}

// pageSize is the unit the page cache drops.
var pageSize = int64(os.Getpagesize())

// syncedDropper hands a segment's pages back to the kernel once they are
// on disk. Raft reads its log back only for a follower that has fallen
// further behind than the group's entry cache (raft_cache.go), and at
// start-up; in between, every appended byte would otherwise sit in the
// page cache beside the partition log that holds the same bytes, and push
// out the pages consumers do read. Handing them back also lets the next
// appends reuse those pages instead of taking new ones, which on a
// virtual machine whose free memory goes back to the host is most of the
// cost of a write.
//
// Only whole pages below the end of the last write are dropped: the
// partial page at the end is written again by the next append, and
// dropping it would make that write read it back from disk first.
type syncedDropper struct {
	types.WritableFile
	fd      int
	end     int64 // end of the furthest write
	dropped int64 // pages below this are dropped
}

func dropSynced(f types.WritableFile) types.WritableFile {
	// raft-wal's files are *os.File, or embed one.
	osf, ok := f.(interface{ Fd() uintptr })
	if !ok {
		return f
	}
	return &syncedDropper{WritableFile: f, fd: int(osf.Fd())}
}

// WriteAt implements io.WriterAt. raft-wal appends from one goroutine.
func (d *syncedDropper) WriteAt(p []byte, off int64) (int, error) {
	n, err := d.WritableFile.WriteAt(p, off)
	d.end = max(d.end, off+int64(n))
	return n, err
}

// Sync implements types.WritableFile.
func (d *syncedDropper) Sync() error {
	if err := d.WritableFile.Sync(); err != nil {
		return err
	}
	if upTo := d.end / pageSize * pageSize; upTo > d.dropped {
		// Advice only: a failure leaves the pages cached, nothing else.
		dropPages(d.fd, d.dropped, upTo-d.dropped)
		d.dropped = upTo
	}
	return nil
}

// openWAL opens the raft-wal log and stable store in dir, with meta as
// its metadata database.
func openWAL(dir string, segmentSize int, hcl hclog.Logger, meta *metadb.BoltMetaDB) (*raftwal.WAL, error) {
	return raftwal.Open(dir,
		raftwal.WithSegmentSize(segmentSize),
		raftwal.WithSegmentFiler(segment.NewFiler(dir, sparseFS{fs.New()})),
		raftwal.WithLogger(hcl),
		raftwal.WithMetaStore(meta))
}

// walChunkBytes bounds the entry bytes of one raft-wal append.
const walChunkBytes = 1 << 20

// chunkedLogStore hands raft-wal a long run of entries in appends of at
// most walChunkBytes (or one entry). raft-wal gathers an append in a
// buffer that grows to the largest append it has seen and keeps it until
// its segment is full; a follower storing 64 entries of 1 MiB in one
// append would pin 128 MiB per partition for as long. Each chunk costs
// one fsync more, which is small next to writing a MiB. A failure leaves
// a prefix of the entries stored, which Raft treats like a crash between
// two appends.
type chunkedLogStore struct{ raft.LogStore }

// StoreLogs implements raft.LogStore.
func (c chunkedLogStore) StoreLogs(logs []*raft.Log) error {
	for len(logs) > 0 {
		n, size := 1, len(logs[0].Data)
		for n < len(logs) && size+len(logs[n].Data) <= walChunkBytes {
			size += len(logs[n].Data)
			n++
		}
		if err := c.LogStore.StoreLogs(logs[:n]); err != nil {
			return err
		}
		logs = logs[n:]
	}
	return nil
}

// IsMonotonic implements raft.MonotonicLogStore.
func (c chunkedLogStore) IsMonotonic() bool { return monotonic(c.LogStore) }

// monotonic reports whether s is a raft.MonotonicLogStore that says so.
// A store wrapping another passes its answer on: a log that cannot have
// gaps must be emptied, not cut, when a snapshot is installed, and Raft
// asks only the store it was given.
func monotonic(s raft.LogStore) bool {
	m, ok := s.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}
