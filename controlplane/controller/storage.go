package controller

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

const (
	// defaultSegmentSize keeps raft-wal from preallocating its 64 MiB
	// default per segment; __meta entries are small.
	defaultSegmentSize = 4 << 20
	// logCacheSize is how many recent entries the leader serves from
	// memory instead of reading them back from the WAL.
	logCacheSize = 512
	// snapshotsRetained is how many __meta snapshots stay on disk.
	snapshotsRetained = 2
)

// stores are the on-disk parts of the __meta replica under DataDir/meta:
// wal/ holds the raft-wal log and stable store, snapshots/ the snapshots.
type stores struct {
	wal   *wal.WAL
	meta  *metadb.BoltMetaDB
	logs  raft.LogStore // the WAL behind a LogCache
	snaps *raft.FileSnapshotStore
}

// openStores opens the stores under dir. raft-wal only drops whole
// segments when Raft compacts its log, so segmentSize also decides how
// far behind a snapshot the log really ends.
func openStores(dir string, segmentSize int, logger hclog.Logger) (*stores, error) {
	walDir := filepath.Join(dir, "wal")
	if err := os.MkdirAll(walDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", walDir, err)
	}
	// The WAL does not close the metadata database it opens itself, and
	// its file lock would then block a reopen in this process: own it.
	mdb := &metadb.BoltMetaDB{}
	w, err := wal.Open(walDir, wal.WithSegmentSize(segmentSize), wal.WithMetaStore(mdb), wal.WithLogger(logger.Named("wal")))
	if err != nil {
		_ = mdb.Close()
		return nil, fmt.Errorf("open raft log %s: %w", walDir, err)
	}
	s := &stores{wal: w, meta: mdb}
	if s.logs, err = raft.NewLogCache(logCacheSize, w); err != nil {
		s.close()
		return nil, fmt.Errorf("raft log cache: %w", err)
	}
	if s.snaps, err = raft.NewFileSnapshotStoreWithLogger(dir, snapshotsRetained, logger.Named("snapshots")); err != nil {
		s.close()
		return nil, fmt.Errorf("open snapshot store %s: %w", dir, err)
	}
	return s, nil
}

// hasState reports whether this replica was bootstrapped or joined before.
func (s *stores) hasState() (bool, error) {
	ok, err := raft.HasExistingState(s.logs, s.wal, s.snaps)
	if err != nil {
		return false, fmt.Errorf("inspect raft state: %w", err)
	}
	return ok, nil
}

// close closes the log and its metadata database. Raft must be shut down.
func (s *stores) close() error {
	return errors.Join(s.wal.Close(), s.meta.Close())
}
