package storage

import (
	"fmt"
	"os"
	"sync/atomic"
)

// Chunk is a run of whole batches in one segment file, ready to be copied
// out or sent with sendfile from File at Pos. It holds a reference on the
// segment, so it stays readable even if retention deletes the segment;
// Release drops the reference. An empty chunk (Len 0) needs no Release but
// tolerates one.
type Chunk struct {
	// File is the segment file; do not close it or move its offset.
	File *os.File
	// Pos is where the first batch starts in File.
	Pos int64
	// Len is the bytes of whole batches from Pos.
	Len int
	// FirstOffset is the base offset of the first batch (the requested
	// offset when the chunk is empty).
	FirstOffset int64
	// NextOffset follows the last batch: where the next read continues.
	NextOffset int64
	// SegmentEnd says the chunk runs to the end of its segment as it was
	// when read: a read at NextOffset continues in the next segment (or
	// finds the log end).
	SegmentEnd bool

	h *chunkHandle
}

type chunkHandle struct {
	seg      *segment
	released atomic.Bool
}

// Release drops the chunk's hold on its segment. It is safe to call more
// than once, also on copies; the chunk must not be read afterwards.
func (c Chunk) Release() {
	if c.h != nil && c.h.released.CompareAndSwap(false, true) {
		c.h.seg.unref()
	}
}

// ReadInto copies the chunk's bytes into dst, up to len(dst), and returns
// how many it copied.
func (c Chunk) ReadInto(dst []byte) (int, error) {
	n := min(len(dst), c.Len)
	if n == 0 {
		return 0, nil
	}
	got, err := c.File.ReadAt(dst[:n], c.Pos)
	if got < n {
		return got, fmt.Errorf("read chunk at %d: %w", c.Pos, err)
	}
	return got, nil
}

// ReadAll returns a copy of the chunk's bytes.
func (c Chunk) ReadAll() ([]byte, error) {
	b := make([]byte, c.Len)
	if _, err := c.ReadInto(b); err != nil {
		return nil, err
	}
	return b, nil
}

// Bytes returns a copy of the chunk's bytes, or nil if they cannot be read
// (use ReadAll to see the error). Dropping the data is safe for a fetch:
// the client asks again.
func (c Chunk) Bytes() []byte {
	b, err := c.ReadAll()
	if err != nil {
		return nil
	}
	return b
}
