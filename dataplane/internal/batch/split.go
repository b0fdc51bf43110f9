package batch

import (
	"encoding/binary"
	"fmt"
)

// Iter walks a records field holding concatenated batches, without
// allocating. It checks framing only (the length field, and for v2 batches
// that the length covers the header); Validate checks each batch in full.
//
//	it := batch.NewIter(records)
//	for b, ok := it.Next(); ok; b, ok = it.Next() { ... }
//	if it.Err() != nil { ... }
//	partial := it.Rest()
type Iter struct {
	buf []byte
	err error
}

// NewIter starts an Iter over buf.
func NewIter(buf []byte) Iter { return Iter{buf: buf} }

// Next returns the next whole batch. It returns false at the end of the
// buffer, at a trailing partial batch (see Rest), or at a framing error (see
// Err).
func (it *Iter) Next() ([]byte, bool) {
	if it.err != nil || len(it.buf) < LogOverhead {
		return nil, false
	}
	length := int32(binary.BigEndian.Uint32(it.buf[offBatchLength:]))
	minLength := int32(minLegacyLength)
	if len(it.buf) > offMagic && it.buf[offMagic] == Magic {
		minLength = HeaderSize - LogOverhead
	}
	if length < minLength {
		it.err = fmt.Errorf("%w: batch length %d", ErrCorrupt, length)
		return nil, false
	}
	size := LogOverhead + int(length)
	if size > len(it.buf) {
		return nil, false
	}
	b := it.buf[:size:size]
	it.buf = it.buf[size:]
	return b, true
}

// Rest is what Next has not returned: after Next returns false with a nil
// Err, a trailing partial batch (or nothing); after a framing error, the
// bytes from the bad batch on.
func (it *Iter) Rest() []byte { return it.buf }

// Err is the framing error that stopped the walk, if any.
func (it *Iter) Err() error { return it.err }

// Split cuts buf into whole batches. A trailing partial batch, as a fetch
// response may end with, is returned as rest and is not an error. A framing
// error returns the batches before it, the bytes from the bad one on, and
// an error wrapping ErrCorrupt.
func Split(buf []byte) (batches [][]byte, rest []byte, err error) {
	it := NewIter(buf)
	for b, ok := it.Next(); ok; b, ok = it.Next() {
		batches = append(batches, b)
	}
	return batches, it.Rest(), it.Err()
}
