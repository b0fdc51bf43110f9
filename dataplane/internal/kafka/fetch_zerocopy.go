package kafka

// Zero-copy Fetch responses. A Fetch handler does not copy record batches
// out of the log: each partition's record set stays a list of storage
// chunks (file regions holding a reference on their segment, so retention
// may delete the file meanwhile), and the connection writer splices them
// into the encoded response. Large chunks go from the page cache to the
// socket with sendfile(2); small ones are read straight into the write
// buffer, which costs less than the extra system calls.
//
// Everything around the record sets is encoded by kmsg. To find where each
// record set goes, the response is encoded twice, once with every spliced
// partition's RecordBatches null and once empty: the two encodings differ
// only in those length fields (int32 -1 against 0, or the compact uvarint
// 0 against 1), in encoding order. The frame is the first encoding with each
// of those fields replaced by the real length, and the record set follows
// it on the wire.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/dataplane/internal/storage"
)

// sendfileMin is the smallest chunk sent with sendfile; smaller chunks are
// copied into the write buffer.
const sendfileMin = 32 << 10

// errShortChunk means a segment file ended before a chunk did (the log was
// truncated under the fetch); the frame cannot be completed.
var errShortChunk = errors.New("kafka: record set shorter than announced")

// recordSet is one partition's record batches in offset order: runs of
// whole batches, possibly in several segments.
type recordSet []storage.Chunk

func (rs recordSet) size() int {
	n := 0
	for _, c := range rs {
		n += c.Len
	}
	return n
}

// release drops the set's holds on its segments.
func (rs recordSet) release() {
	for _, c := range rs {
		c.Release()
	}
}

// zeroCopyFetch is a Fetch response whose record sets are still in segment
// files. The spliced partitions have null RecordBatches. The connection
// writer encodes it with appendFrame and writeFrame, and must call release
// whether or not it was written.
type zeroCopyFetch struct {
	*kmsg.FetchResponse
	parts []*kmsg.FetchResponseTopicPartition // spliced partitions in encoding order
	sets  []recordSet                         // their record sets
}

// newZeroCopyFetch wraps resp with the record sets read for it, given by
// topic and partition index in resp. It returns resp itself when no set
// holds records.
func newZeroCopyFetch(resp *kmsg.FetchResponse, sets [][]recordSet) kmsg.Response {
	z := &zeroCopyFetch{FetchResponse: resp}
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			if set := sets[i][j]; len(set) > 0 {
				z.parts = append(z.parts, &resp.Topics[i].Partitions[j])
				z.sets = append(z.sets, set)
			}
		}
	}
	if len(z.sets) == 0 {
		return resp
	}
	return z
}

// setsSize is the bytes of all record sets.
func (z *zeroCopyFetch) setsSize() int {
	n := 0
	for _, s := range z.sets {
		n += s.size()
	}
	return n
}

// release drops every record set's hold on its segments.
func (z *zeroCopyFetch) release() {
	for _, s := range z.sets {
		s.release()
	}
	z.sets = nil
}

// frameScratch is the writer's reusable encoding space.
type frameScratch struct {
	alt  []byte
	cuts []int
}

// appendFrame appends the whole response frame (size prefix, header and
// body) except the record sets, and returns, for each record set in order,
// the position in the returned buffer where its bytes go. ok is false if
// the placeholders were not found where expected; the caller then sends the
// copied form (materialize).
func (z *zeroCopyFetch) appendFrame(buf []byte, sc *frameScratch, corr int32, flex bool) (out []byte, cuts []int, ok bool) {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0)
	buf = binary.BigEndian.AppendUint32(buf, uint32(corr))
	if flex {
		buf = append(buf, 0)
	}
	bodyAt := len(buf)
	for _, p := range z.parts {
		p.RecordBatches = nil
	}
	buf = z.AppendTo(buf)
	for _, p := range z.parts {
		p.RecordBatches = []byte{}
	}
	sc.alt = z.AppendTo(sc.alt[:0])
	for _, p := range z.parts {
		p.RecordBatches = nil
	}
	body := buf[bodyAt:]
	if len(body) != len(sc.alt) {
		return buf[:start], nil, false
	}
	width := 4 // int32 -1 against 0
	if z.IsFlexible() {
		width = 1 // uvarint 0 against 1
	}
	// Find the placeholders, then rewrite the body in place with the real
	// lengths (a flexible length may be wider than its placeholder, so
	// copy the body aside first).
	holes := sc.cuts[:0]
	for i := 0; i < len(body); i++ {
		if body[i] != sc.alt[i] {
			if len(holes) == len(z.sets) || i+width > len(body) {
				return buf[:start], nil, false
			}
			holes = append(holes, i)
			i += width - 1
		}
	}
	if len(holes) != len(z.sets) {
		return buf[:start], nil, false
	}
	sc.alt = append(sc.alt[:0], body...)
	buf = buf[:bodyAt]
	prev, total := 0, 0
	cuts = holes // rewritten in place: holes[k] is read before cuts[k] is set
	for k, at := range holes {
		buf = append(buf, sc.alt[prev:at]...)
		n := z.sets[k].size()
		total += n
		if flex {
			buf = binary.AppendUvarint(buf, uint64(n)+1)
		} else {
			buf = binary.BigEndian.AppendUint32(buf, uint32(n))
		}
		cuts[k] = len(buf) - start
		prev = at + width
	}
	buf = append(buf, sc.alt[prev:]...)
	binary.BigEndian.PutUint32(buf[start:], uint32(len(buf)-start-4+total))
	sc.cuts = holes
	return buf, cuts, true
}

// materialize copies the record sets into the response, for the writer's
// fallback.
func (z *zeroCopyFetch) materialize() error {
	for k, set := range z.sets {
		b := make([]byte, 0, set.size())
		for _, c := range set {
			n := len(b)
			b = b[:n+c.Len]
			if _, err := c.ReadInto(b[n:]); err != nil {
				return fmt.Errorf("materialize fetch response: %w", err)
			}
		}
		z.parts[k].RecordBatches = b
	}
	return nil
}

// chunkSender writes chunks to a connection.
type chunkSender struct {
	bw  *bufio.Writer
	raw syscall.RawConn // nil: copy everything through bw
}

// writeFrame writes frame with each record set spliced in at its cut and
// returns the bytes written.
func (s *chunkSender) writeFrame(frame []byte, cuts []int, sets []recordSet) (int, error) {
	n, prev := 0, 0
	for k, set := range sets {
		w, err := s.bw.Write(frame[prev:cuts[k]])
		n += w
		if err != nil {
			return n, err
		}
		prev = cuts[k]
		for _, c := range set {
			w, err := s.writeChunk(c)
			n += w
			if err != nil {
				return n, err
			}
		}
	}
	w, err := s.bw.Write(frame[prev:])
	return n + w, err
}

// writeChunk sends one chunk: with sendfile when it is large and the
// connection allows, otherwise read into the write buffer.
func (s *chunkSender) writeChunk(c storage.Chunk) (int, error) {
	if s.raw != nil && c.Len >= sendfileMin {
		if err := s.bw.Flush(); err != nil {
			return 0, err
		}
		n, handled, err := sendChunk(s.raw, c)
		if handled || err != nil {
			return n, err
		}
	}
	pos, left := c.Pos, c.Len
	for left > 0 {
		if s.bw.Available() == 0 {
			if err := s.bw.Flush(); err != nil {
				return c.Len - left, err
			}
		}
		buf := s.bw.AvailableBuffer()
		buf = buf[:min(cap(buf), left)]
		got, err := c.File.ReadAt(buf, pos)
		if got < len(buf) {
			if err == nil || err == io.EOF {
				err = errShortChunk
			}
			return c.Len - left, fmt.Errorf("read chunk at %d: %w", pos, err)
		}
		s.bw.Write(buf) // fits: it is the buffer's own free space
		pos += int64(got)
		left -= got
	}
	return c.Len, nil
}
