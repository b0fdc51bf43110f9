package replica

import (
	"github.com/hashicorp/go-hclog"
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
	return s.FS.Create(dir, name, 0)
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
