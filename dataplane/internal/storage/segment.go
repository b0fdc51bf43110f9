package storage

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chronik-stream/chronik/dataplane/internal/batch"
)

// castagnoli is the CRC-32C table of v2 batches.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maxRelOffset is the largest offset distance from a segment's base that
// the uint32 index entries can hold.
const maxRelOffset = math.MaxUint32

const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
)

// segmentName is the file name stem of the segment at base: the offset in
// 20 digits, as Kafka names them.
func segmentName(base int64) string { return fmt.Sprintf("%020d", base) }

// parseSegmentName returns the base offset of a "<20 digits>.log" name.
func parseSegmentName(name string) (int64, bool) {
	stem, ok := strings.CutSuffix(name, logSuffix)
	if !ok || len(stem) != 20 {
		return 0, false
	}
	base, err := strconv.ParseInt(stem, 10, 64)
	return base, err == nil && base >= 0
}

// segment is one .log file and its indexes.
type segment struct {
	base int64
	path string // directory + name stem
	f    *os.File
	refs atomic.Int32 // the log's reference plus one per reader; closes at 0

	// Guarded by Log.mu: written under Lock, read under RLock.
	size       int64
	next       int64     // offset after the last batch
	maxTs      int64     // largest batch max timestamp, -1 when none
	maxTsOff   int64     // last offset of the batch that carried it
	created    time.Time // start of the segment's age for segment.ms
	lastWrite  time.Time // retention falls back to it without timestamps
	idxF, timF *os.File  // open while active and until the flusher syncs them

	// Writer only (Log.writeMu), nil once the segment is rolled.
	ix *indexer
	// Entries the writer has written to the index files.
	offWritten, timWritten int

	idxMu  sync.Mutex
	loaded bool // off and tim hold the whole index
	off    []offsetEntry
	tim    []timeEntry
}

func (s *segment) ref() { s.refs.Add(1) }

// unref drops a reference; the last one closes the files.
func (s *segment) unref() {
	if s.refs.Add(-1) == 0 {
		s.f.Close()
		if s.idxF != nil {
			s.idxF.Close()
			s.timF.Close()
		}
	}
}

// createSegment makes the files of a new, empty segment at base.
func createSegment(dir string, base int64, interval int) (*segment, error) {
	s := &segment{base: base, path: filepath.Join(dir, segmentName(base)), next: base, maxTs: -1, maxTsOff: -1}
	var err error
	if s.f, err = os.OpenFile(s.path+logSuffix, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644); err != nil {
		return nil, fmt.Errorf("create segment %d: %w", base, err)
	}
	if err := s.openIndexFiles(true); err != nil {
		s.f.Close()
		os.Remove(s.path + logSuffix)
		return nil, fmt.Errorf("create segment %d: %w", base, err)
	}
	s.ix = newIndexer(base, interval)
	s.loaded = true
	s.refs.Store(1)
	return s, nil
}

// openIndexFiles opens the index files for writing, truncating them when
// fresh is set (a new or rebuilt segment).
func (s *segment) openIndexFiles(fresh bool) error {
	flags := os.O_RDWR | os.O_CREATE
	if fresh {
		flags |= os.O_TRUNC
	}
	var err error
	if s.idxF, err = os.OpenFile(s.path+indexSuffix, flags, 0o644); err != nil {
		return err
	}
	if s.timF, err = os.OpenFile(s.path+timeIndexSuffix, flags, 0o644); err != nil {
		s.idxF.Close()
		s.idxF = nil
		return err
	}
	return nil
}

// closeIndexFiles closes the index files once they are synced and the
// segment is no longer written.
func (s *segment) closeIndexFiles() error {
	if s.idxF == nil {
		return nil
	}
	err := errors.Join(s.idxF.Close(), s.timF.Close())
	s.idxF, s.timF = nil, nil
	return err
}

// removeFiles unlinks the segment's files; open descriptors stay readable.
func (s *segment) removeFiles() error {
	var errs []error
	for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		if err := os.Remove(s.path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// writeIndexes writes the writer's pending entries to the index files and
// returns them for publishing. buf is scratch space.
func (s *segment) writeIndexes(buf []byte) ([]offsetEntry, []timeEntry, []byte, error) {
	off, tim := s.ix.take()
	if len(off) > 0 {
		buf = appendOffsetEntries(buf[:0], off)
		if _, err := s.idxF.WriteAt(buf, int64(s.offWritten)*offsetEntrySize); err != nil {
			return nil, nil, buf, fmt.Errorf("write offset index of segment %d: %w", s.base, err)
		}
	}
	if len(tim) > 0 {
		buf = appendTimeEntries(buf[:0], tim)
		if _, err := s.timF.WriteAt(buf, int64(s.timWritten)*timeEntrySize); err != nil {
			return nil, nil, buf, fmt.Errorf("write time index of segment %d: %w", s.base, err)
		}
	}
	s.offWritten += len(off)
	s.timWritten += len(tim)
	return off, tim, buf, nil
}

// publishIndexes makes entries written by the writer visible to readers.
func (s *segment) publishIndexes(off []offsetEntry, tim []timeEntry) {
	if len(off) == 0 && len(tim) == 0 {
		return
	}
	s.idxMu.Lock()
	s.off = append(s.off, off...)
	s.tim = append(s.tim, tim...)
	s.idxMu.Unlock()
}

// indexes returns the segment's index entries, loading (and if need be
// rebuilding) them on first use. size and next are the segment's published
// bounds; a closed segment's never change.
func (s *segment) indexes(size, next int64, lg *slog.Logger, interval int) ([]offsetEntry, []timeEntry) {
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	if !s.loaded {
		s.off, s.tim = s.loadIndexes(size, next, lg, interval)
		s.loaded = true
	}
	return s.off, s.tim
}

// loadIndexes reads the index files of a closed segment, or rebuilds the
// indexes from the log when the files are missing or inconsistent.
func (s *segment) loadIndexes(size, next int64, lg *slog.Logger, interval int) ([]offsetEntry, []timeEntry) {
	ob, oerr := os.ReadFile(s.path + indexSuffix)
	tb, terr := os.ReadFile(s.path + timeIndexSuffix)
	var off []offsetEntry
	var tim []timeEntry
	if err := errors.Join(oerr, terr); err == nil {
		if off, err = decodeOffsetIndex(ob, size, next-s.base); err == nil {
			if tim, err = decodeTimeIndex(tb, next-s.base); err == nil {
				return off, tim
			}
		}
		lg.Warn("rebuilding segment indexes", "segment", s.base, "err", err)
	} else {
		lg.Warn("rebuilding segment indexes", "segment", s.base, "err", err)
	}
	ix := newIndexer(s.base, interval)
	if _, _, err := scanSegment(s.f, s.base, ix, 0, s.base, size, false, nil); err != nil {
		lg.Warn("rebuilding segment indexes: log does not scan cleanly", "segment", s.base, "err", err)
	}
	ix.final()
	off, tim = ix.take()
	return off, tim
}

// headReader reads batch headers (and small whole batches) from a segment
// through a window buffer, so walking batches costs one pread per window
// rather than one per batch.
type headReader struct {
	f     *os.File
	limit int64 // the segment's published size
	buf   []byte
	start int64 // file position of buf[0]
	n     int   // valid bytes in buf

	pooled bool
}

var readBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func newHeadReader(f *os.File, limit int64) *headReader {
	return &headReader{f: f, limit: limit, buf: *readBufPool.Get().(*[]byte), pooled: true}
}

func (r *headReader) free() {
	if r.pooled {
		b := r.buf
		readBufPool.Put(&b)
	}
	r.buf = nil
}

// span returns the n bytes at pos, reading a new window when they are not
// in the current one. n must not exceed the buffer size.
func (r *headReader) span(pos int64, n int) ([]byte, error) {
	if pos >= r.start && pos+int64(n) <= r.start+int64(r.n) {
		off := int(pos - r.start)
		return r.buf[off : off+n], nil
	}
	want := int(min(int64(len(r.buf)), r.limit-pos))
	if want < n {
		return nil, io.ErrUnexpectedEOF
	}
	got, err := r.f.ReadAt(r.buf[:want], pos)
	if got < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		r.n = 0
		return nil, err
	}
	r.start, r.n = pos, got
	return r.buf[:n], nil
}

// header reads and checks the framing of the batch at pos: magic 2, a length
// covering the header and ending inside the segment.
func (r *headReader) header(pos int64) (batch.Header, error) {
	b, err := r.span(pos, batch.HeaderSize)
	if err != nil {
		return batch.Header{}, fmt.Errorf("read batch header at %d: %w", pos, err)
	}
	h, err := batch.ParseHeader(b)
	if err != nil {
		return batch.Header{}, fmt.Errorf("batch at %d: %w", pos, err)
	}
	if pos+int64(h.Size()) > r.limit {
		return batch.Header{}, fmt.Errorf("batch at %d: %d bytes run past the segment end %d: %w", pos, h.Size(), r.limit, io.ErrUnexpectedEOF)
	}
	if h.LastOffsetDelta < 0 {
		return batch.Header{}, fmt.Errorf("batch at %d: last offset delta %d: %w", pos, h.LastOffsetDelta, batch.ErrCorrupt)
	}
	return h, nil
}

// checksum computes the CRC-32C of the batch at pos of the given size.
func (r *headReader) checksum(pos int64, size int) (uint32, error) {
	if size <= len(r.buf) {
		b, err := r.span(pos, size)
		if err != nil {
			return 0, err
		}
		return batch.Checksum(b), nil
	}
	const crcStart = 21 // the CRC covers the batch from the attributes on
	var crc uint32
	for p, end := pos+crcStart, pos+int64(size); p < end; {
		n := int(min(int64(len(r.buf)), end-p))
		b, err := r.span(p, n)
		if err != nil {
			return 0, err
		}
		crc = crc32.Update(crc, castagnoli, b)
		p += int64(n)
	}
	return crc, nil
}

// scanSegment walks the batches of f from pos (which must hold offset
// expect) up to limit, checking framing, offset continuity and, with
// checkCRC, each batch's CRC. It feeds ix and visit with every good batch
// and returns the position and offset where the good batches end, with the
// reason when that is before limit.
func scanSegment(f *os.File, base int64, ix *indexer, pos, expect, limit int64, checkCRC bool, visit func(batch.Header)) (int64, int64, error) {
	r := newHeadReader(f, limit)
	if checkCRC {
		r.free() // recovery reads everything: use a bigger window
		r.buf = make([]byte, 1<<20)
	}
	defer r.free()
	for pos < limit {
		h, err := r.header(pos)
		if err != nil {
			return pos, expect, err
		}
		if h.BaseOffset != expect {
			return pos, expect, fmt.Errorf("batch at %d: base offset %d, want %d: %w", pos, h.BaseOffset, expect, batch.ErrCorrupt)
		}
		if h.LastOffset()-base > maxRelOffset {
			return pos, expect, fmt.Errorf("batch at %d: offset %d too far from segment base: %w", pos, h.LastOffset(), batch.ErrCorrupt)
		}
		if checkCRC {
			crc, err := r.checksum(pos, h.Size())
			if err != nil {
				return pos, expect, fmt.Errorf("batch at %d: %w", pos, err)
			}
			if crc != h.CRC {
				return pos, expect, fmt.Errorf("batch at %d: crc %08x, computed %08x: %w", pos, h.CRC, crc, batch.ErrCorrupt)
			}
		}
		if ix != nil {
			ix.add(h.BaseOffset, h.LastOffset(), h.MaxTimestamp, pos, h.Size())
		}
		if visit != nil {
			visit(h)
		}
		pos += int64(h.Size())
		expect = h.NextOffset()
	}
	return pos, expect, nil
}
