package raftnet

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// The Raft messages are encoded field by field in declaration order:
// integers as (zig-zag) varints, booleans as one byte, byte slices as
// uvarint(len+1) followed by the bytes, with 0 standing for nil so that nil
// and empty survive the trip (Raft tells heartbeats apart by a nil leader).
// Decoders ignore trailing bytes so that fields can be appended later.

// encoder builds a payload out of a small buffer for the fixed fields and
// references to large byte slices, which are written without copying.
type encoder struct {
	buf   []byte
	mark  int
	parts [][]byte
}

func (e *encoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *encoder) varint(v int64)   { e.buf = binary.AppendVarint(e.buf, v) }

func (e *encoder) bool(v bool) {
	if v {
		e.buf = append(e.buf, 1)
	} else {
		e.buf = append(e.buf, 0)
	}
}

func (e *encoder) bytes(b []byte) {
	if b == nil {
		e.uvarint(0)
		return
	}
	e.uvarint(uint64(len(b)) + 1)
	if len(b) < bigPart {
		e.buf = append(e.buf, b...)
		return
	}
	e.cut()
	e.parts = append(e.parts, b)
}

// cut closes the current run of small fields as a part of its own. Later
// appends may move e.buf, but the part keeps pointing at the bytes it saw.
func (e *encoder) cut() {
	if len(e.buf) > e.mark {
		e.parts = append(e.parts, e.buf[e.mark:len(e.buf):len(e.buf)])
	}
	e.mark = len(e.buf)
}

func (e *encoder) finish() [][]byte {
	e.cut()
	return e.parts
}

func (e *encoder) time(t time.Time) {
	if t.IsZero() {
		e.bool(false)
		return
	}
	e.bool(true)
	e.varint(t.UnixNano())
}

// decoder reads fields from a payload; the first error sticks and zero
// values are returned from then on. Byte slices alias the payload.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or malformed %s", ErrProtocol, what)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	if len(d.b) == 0 || d.b[0] > 1 {
		d.fail("bool")
		return false
	}
	v := d.b[0] == 1
	d.b = d.b[1:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n == 0 {
		return nil
	}
	n--
	if n > uint64(len(d.b)) {
		d.fail("byte string")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) time() time.Time {
	if !d.bool() {
		return time.Time{}
	}
	return time.Unix(0, d.varint())
}

func (e *encoder) header(h raft.RPCHeader) {
	e.varint(int64(h.ProtocolVersion))
	e.bytes(h.ID)
	e.bytes(h.Addr)
}

func (d *decoder) header() raft.RPCHeader {
	return raft.RPCHeader{
		ProtocolVersion: raft.ProtocolVersion(d.varint()),
		ID:              d.bytes(),
		Addr:            d.bytes(),
	}
}

// encodeMessage appends any Raft request or response to e.
func encodeMessage(e *encoder, msg any) error {
	if e.buf == nil {
		e.buf = make([]byte, 0, 128)
	}
	switch m := msg.(type) {
	case *raft.AppendEntriesRequest:
		encodeAppendEntries(e, m)
	case *raft.AppendEntriesResponse:
		e.header(m.RPCHeader)
		e.uvarint(m.Term)
		e.uvarint(m.LastLog)
		e.bool(m.Success)
		e.bool(m.NoRetryBackoff)
	case *raft.RequestVoteRequest:
		e.header(m.RPCHeader)
		e.uvarint(m.Term)
		e.bytes(m.Candidate)
		e.uvarint(m.LastLogIndex)
		e.uvarint(m.LastLogTerm)
		e.bool(m.LeadershipTransfer)
	case *raft.RequestVoteResponse:
		e.header(m.RPCHeader)
		e.uvarint(m.Term)
		e.bytes(m.Peers)
		e.bool(m.Granted)
	case *raft.RequestPreVoteRequest:
		e.header(m.RPCHeader)
		e.uvarint(m.Term)
		e.uvarint(m.LastLogIndex)
		e.uvarint(m.LastLogTerm)
	case *raft.RequestPreVoteResponse:
		e.header(m.RPCHeader)
		e.uvarint(m.Term)
		e.bool(m.Granted)
	case *raft.InstallSnapshotRequest:
		encodeInstallSnapshot(e, m)
	case *raft.InstallSnapshotResponse:
		e.header(m.RPCHeader)
		e.uvarint(m.Term)
		e.bool(m.Success)
	case *raft.TimeoutNowRequest:
		e.header(m.RPCHeader)
	case *raft.TimeoutNowResponse:
		e.header(m.RPCHeader)
	default:
		return fmt.Errorf("encode %T: %w", msg, ErrProtocol)
	}
	return nil
}

func encodeAppendEntries(e *encoder, m *raft.AppendEntriesRequest) {
	e.header(m.RPCHeader)
	e.uvarint(m.Term)
	e.bytes(m.Leader)
	e.uvarint(m.PrevLogEntry)
	e.uvarint(m.PrevLogTerm)
	e.uvarint(m.LeaderCommitIndex)
	e.uvarint(uint64(len(m.Entries)))
	for _, l := range m.Entries {
		e.uvarint(l.Index)
		e.uvarint(l.Term)
		e.uvarint(uint64(l.Type))
		e.bytes(l.Data)
		e.bytes(l.Extensions)
		e.time(l.AppendedAt)
	}
}

func encodeInstallSnapshot(e *encoder, m *raft.InstallSnapshotRequest) {
	e.header(m.RPCHeader)
	e.varint(int64(m.SnapshotVersion))
	e.uvarint(m.Term)
	e.bytes(m.Leader)
	e.uvarint(m.LastLogIndex)
	e.uvarint(m.LastLogTerm)
	e.bytes(m.Peers)
	e.bytes(m.Configuration)
	e.uvarint(m.ConfigurationIndex)
	e.varint(m.Size)
}

// decodeRequest decodes the request of message type op.
func decodeRequest(op uint8, payload []byte) (any, error) {
	d := &decoder{b: payload}
	var msg any
	switch op {
	case opAppendEntries:
		msg = decodeAppendEntries(d)
	case opRequestVote:
		msg = &raft.RequestVoteRequest{
			RPCHeader:          d.header(),
			Term:               d.uvarint(),
			Candidate:          d.bytes(),
			LastLogIndex:       d.uvarint(),
			LastLogTerm:        d.uvarint(),
			LeadershipTransfer: d.bool(),
		}
	case opRequestPreVote:
		msg = &raft.RequestPreVoteRequest{
			RPCHeader:    d.header(),
			Term:         d.uvarint(),
			LastLogIndex: d.uvarint(),
			LastLogTerm:  d.uvarint(),
		}
	case opInstallSnapshot:
		msg = decodeInstallSnapshot(d)
	case opTimeoutNow:
		msg = &raft.TimeoutNowRequest{RPCHeader: d.header()}
	default:
		return nil, fmt.Errorf("%w: unknown request type %d", ErrProtocol, op)
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode request type %d: %w", op, d.err)
	}
	return msg, nil
}

func decodeAppendEntries(d *decoder) *raft.AppendEntriesRequest {
	m := &raft.AppendEntriesRequest{
		RPCHeader:         d.header(),
		Term:              d.uvarint(),
		Leader:            d.bytes(),
		PrevLogEntry:      d.uvarint(),
		PrevLogTerm:       d.uvarint(),
		LeaderCommitIndex: d.uvarint(),
	}
	n := d.uvarint()
	if d.err != nil || n == 0 {
		return m
	}
	// Every entry takes at least six bytes: bound the allocation by what
	// the payload can hold before trusting the count.
	if n > uint64(len(d.b))/6 {
		d.fail("entry count")
		return m
	}
	logs := make([]raft.Log, n)
	m.Entries = make([]*raft.Log, n)
	for i := range logs {
		l := &logs[i]
		l.Index = d.uvarint()
		l.Term = d.uvarint()
		t := d.uvarint()
		if t > 255 {
			d.fail("log type")
		}
		l.Type = raft.LogType(t)
		l.Data = d.bytes()
		l.Extensions = d.bytes()
		l.AppendedAt = d.time()
		m.Entries[i] = l
	}
	return m
}

func decodeInstallSnapshot(d *decoder) *raft.InstallSnapshotRequest {
	return &raft.InstallSnapshotRequest{
		RPCHeader:          d.header(),
		SnapshotVersion:    raft.SnapshotVersion(d.varint()),
		Term:               d.uvarint(),
		Leader:             d.bytes(),
		LastLogIndex:       d.uvarint(),
		LastLogTerm:        d.uvarint(),
		Peers:              d.bytes(),
		Configuration:      d.bytes(),
		ConfigurationIndex: d.uvarint(),
		Size:               d.varint(),
	}
}

// decodeResponse decodes a response of message type op into resp, which
// must be the matching response type.
func decodeResponse(op uint8, payload []byte, resp any) error {
	d := &decoder{b: payload}
	switch r := resp.(type) {
	case *raft.AppendEntriesResponse:
		r.RPCHeader = d.header()
		r.Term = d.uvarint()
		r.LastLog = d.uvarint()
		r.Success = d.bool()
		r.NoRetryBackoff = d.bool()
	case *raft.RequestVoteResponse:
		r.RPCHeader = d.header()
		r.Term = d.uvarint()
		r.Peers = d.bytes()
		r.Granted = d.bool()
	case *raft.RequestPreVoteResponse:
		r.RPCHeader = d.header()
		r.Term = d.uvarint()
		r.Granted = d.bool()
	case *raft.InstallSnapshotResponse:
		r.RPCHeader = d.header()
		r.Term = d.uvarint()
		r.Success = d.bool()
	case *raft.TimeoutNowResponse:
		r.RPCHeader = d.header()
	default:
		return fmt.Errorf("decode response %T: %w", resp, ErrProtocol)
	}
	if d.err != nil {
		return fmt.Errorf("decode response type %d: %w", op, d.err)
	}
	return nil
}

// responseOp maps a response value to its message type.
func responseOp(resp any) (uint8, bool) {
	switch resp.(type) {
	case *raft.AppendEntriesResponse:
		return opAppendEntries, true
	case *raft.RequestVoteResponse:
		return opRequestVote, true
	case *raft.RequestPreVoteResponse:
		return opRequestPreVote, true
	case *raft.InstallSnapshotResponse:
		return opInstallSnapshot, true
	case *raft.TimeoutNowResponse:
		return opTimeoutNow, true
	}
	return 0, false
}

// isHeartbeat reports whether req is the bare AppendEntries Raft sends to
// keep followers from starting elections (same test as raft's own
// NetworkTransport).
func isHeartbeat(req *raft.AppendEntriesRequest) bool {
	leader := req.Addr
	if len(leader) == 0 {
		leader = req.Leader
	}
	return req.Term != 0 && leader != nil && req.PrevLogEntry == 0 &&
		req.PrevLogTerm == 0 && len(req.Entries) == 0 && req.LeaderCommitIndex == 0
}
