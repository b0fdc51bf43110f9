package raftnet

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// preface opens every connection so that a stray client (or an HTTP probe)
// is refused before anything is allocated for it. The last byte is the
// protocol version.
const preface = "CHRONIK-RAFTNET\x01"

const (
	frameHeaderLen = 16
	maxNameLen     = 1024
	// bigPart is the size from which a byte slice is written from the
	// caller's memory instead of being copied into the frame's small buffer.
	bigPart = 4 << 10
)

// kind says what a frame is.
type kind uint8

const (
	kindHello    kind = 1 // op: lane; name: advertised address
	kindRequest  kind = 2 // op: message type; name: group or method
	kindResponse kind = 3 // op: message type
	kindError    kind = 4 // op: error code; payload: message
	kindChunk    kind = 5 // op: chunk flags; payload: snapshot bytes
	kindWindow   kind = 6 // payload: uvarint bytes granted
	kindCancel   kind = 7 // the caller gave up on the request
	kindMax      kind = kindCancel
)

// Message types carried in the op byte of requests and responses.
const (
	opAppendEntries   uint8 = 1
	opRequestVote     uint8 = 2
	opRequestPreVote  uint8 = 3
	opInstallSnapshot uint8 = 4
	opTimeoutNow      uint8 = 5
	opCall            uint8 = 6
)

// Chunk flags.
const (
	chunkData  uint8 = 0
	chunkEOF   uint8 = 1 // last chunk; the payload may be empty
	chunkAbort uint8 = 2 // the sender failed to read its snapshot
)

// inFrame is a decoded frame. The payload is owned by the frame.
type inFrame struct {
	kind    kind
	op      uint8
	id      uint64
	name    string
	payload []byte
}

// frameReader reads frames from one connection.
type frameReader struct {
	r        *bufio.Reader
	maxFrame uint32
	hdr      [frameHeaderLen]byte
}

func newFrameReader(r io.Reader, size int, maxFrame uint32) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, size), maxFrame: maxFrame}
}

// next reads one frame.
func (fr *frameReader) next() (inFrame, error) {
	return readFrame(fr.r, &fr.hdr, fr.maxFrame)
}

// readFrame reads one frame from r. Any malformed header is an error: the
// stream cannot be resynchronised, so the caller closes the connection.
func readFrame(r io.Reader, hdr *[frameHeaderLen]byte, maxFrame uint32) (inFrame, error) {
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return inFrame{}, err
	}
	length := binary.BigEndian.Uint32(hdr[0:4])
	k := kind(hdr[4])
	nameLen := binary.BigEndian.Uint16(hdr[6:8])
	f := inFrame{kind: k, op: hdr[5], id: binary.BigEndian.Uint64(hdr[8:16])}
	switch {
	case k == 0 || k > kindMax:
		return inFrame{}, fmt.Errorf("%w: unknown frame kind %d", ErrProtocol, k)
	case length > maxFrame:
		return inFrame{}, fmt.Errorf("%w: frame of %d bytes exceeds %d", ErrProtocol, length, maxFrame)
	case nameLen > maxNameLen || uint32(nameLen) > length:
		return inFrame{}, fmt.Errorf("%w: bad name length %d in frame of %d bytes", ErrProtocol, nameLen, length)
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return inFrame{}, fmt.Errorf("read frame body: %w", err)
	}
	f.name = string(body[:nameLen])
	f.payload = body[nameLen:]
	return f, nil
}

// outFrame is a frame waiting in a connection's write queue. Its parts may
// alias the sender's memory (log entry data), which must not change until the
// frame is written; Raft never modifies entries it has handed out.
type outFrame struct {
	hdr   [frameHeaderLen]byte
	name  string
	parts [][]byte
}

func newOutFrame(k kind, op uint8, id uint64, name string, parts [][]byte) *outFrame {
	f := &outFrame{name: name, parts: parts}
	n := len(name)
	for _, p := range parts {
		n += len(p)
	}
	binary.BigEndian.PutUint32(f.hdr[0:4], uint32(n))
	f.hdr[4] = byte(k)
	f.hdr[5] = op
	binary.BigEndian.PutUint16(f.hdr[6:8], uint16(len(name)))
	binary.BigEndian.PutUint64(f.hdr[8:16], id)
	return f
}

// size is the number of bytes the frame occupies on the wire.
func (f *outFrame) size() int {
	return frameHeaderLen + int(binary.BigEndian.Uint32(f.hdr[0:4]))
}

func (f *outFrame) writeTo(w *bufio.Writer) error {
	if _, err := w.Write(f.hdr[:]); err != nil {
		return err
	}
	if _, err := w.WriteString(f.name); err != nil {
		return err
	}
	for _, p := range f.parts {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// frameLen checks that a frame with the given name and parts fits the limit.
func frameLen(name string, parts [][]byte) int {
	n := len(name)
	for _, p := range parts {
		n += len(p)
	}
	return n
}
