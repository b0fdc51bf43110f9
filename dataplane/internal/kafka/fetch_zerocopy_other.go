//go:build !linux

package kafka

import (
	"syscall"

	"github.com/chronik-stream/chronik/dataplane/internal/storage"
)

// sendChunk is not built here: the writer copies every chunk.
func sendChunk(syscall.RawConn, storage.Chunk) (int, bool, error) { return 0, false, nil }

// cork is not built here.
func cork(syscall.RawConn, bool) {}
