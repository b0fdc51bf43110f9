package replica

// Encodings of what partition groups put in their Raft logs and snapshots,
// and of the two internal RPCs between brokers (replica.read, replica.isr).
// All are decoded from bytes another node wrote, so every decoder checks
// lengths and fails with ErrCorrupt instead of panicking.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrCorrupt means a Raft entry, snapshot or RPC message could not be
// decoded.
var ErrCorrupt = errors.New("replica: malformed message")

// Kinds of partition log entries.
const (
	entryBatch  byte = 1 // one validated record batch to Apply
	entryDelete byte = 2 // DeleteRecords: the new log start offset
)

// encodeBatchEntry copies a record batch into a log entry.
func encodeBatchEntry(records []byte) []byte {
	b := make([]byte, 1+len(records))
	b[0] = entryBatch
	copy(b[1:], records)
	return b
}

func encodeDeleteEntry(offset int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{entryDelete}, uint64(offset))
}

// decodeEntry splits a log entry into its kind and body; a delete entry's
// body is its 8-byte offset.
func decodeEntry(b []byte) (kind byte, body []byte, err error) {
	if len(b) < 1 {
		return 0, nil, fmt.Errorf("%w: empty entry", ErrCorrupt)
	}
	switch b[0] {
	case entryBatch:
		if len(b) == 1 {
			return 0, nil, fmt.Errorf("%w: empty batch entry", ErrCorrupt)
		}
	case entryDelete:
		if len(b) != 9 || int64(binary.BigEndian.Uint64(b[1:])) < 0 {
			return 0, nil, fmt.Errorf("%w: delete entry of %d bytes", ErrCorrupt, len(b))
		}
	default:
		return 0, nil, fmt.Errorf("%w: entry kind %d", ErrCorrupt, b[0])
	}
	return b[0], b[1:], nil
}

// snapRecord is all a partition snapshot holds: the partition log itself
// is the state, so only where it ended and the producer table at that
// point are recorded.
type snapRecord struct {
	End       int64 // log end offset
	Start     int64 // log start offset
	Producers []byte
}

const (
	snapMagic   = "CHRS"
	snapVersion = 1
)

func (r snapRecord) encode() []byte {
	b := make([]byte, 0, 4+1+8+8+4+len(r.Producers))
	b = append(b, snapMagic...)
	b = append(b, snapVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(r.End))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Start))
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Producers)))
	return append(b, r.Producers...)
}

func decodeSnapRecord(b []byte) (snapRecord, error) {
	const head = 4 + 1 + 8 + 8 + 4
	if len(b) < head || string(b[:4]) != snapMagic {
		return snapRecord{}, fmt.Errorf("%w: not a partition snapshot", ErrCorrupt)
	}
	if b[4] != snapVersion {
		return snapRecord{}, fmt.Errorf("%w: snapshot version %d", ErrCorrupt, b[4])
	}
	r := snapRecord{
		End:   int64(binary.BigEndian.Uint64(b[5:])),
		Start: int64(binary.BigEndian.Uint64(b[13:])),
	}
	n := binary.BigEndian.Uint32(b[21:])
	if uint64(n) != uint64(len(b)-head) {
		return snapRecord{}, fmt.Errorf("%w: producer table of %d bytes in %d", ErrCorrupt, n, len(b)-head)
	}
	if r.Start < 0 || r.End < r.Start {
		return snapRecord{}, fmt.Errorf("%w: snapshot offsets %d..%d", ErrCorrupt, r.Start, r.End)
	}
	r.Producers = b[head:]
	return r, nil
}

// wbuf and rbuf are the small varint codec of the RPC messages.
type wbuf struct{ b []byte }

func (w *wbuf) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *wbuf) varint(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *wbuf) str(s string) {
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}

type rbuf struct {
	b   []byte
	err error
}

func (r *rbuf) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: bad %s", ErrCorrupt, what)
	}
	r.b = nil
}

func (r *rbuf) uvarint(what string) uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rbuf) varint(what string) int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rbuf) int32(what string) int32 {
	v := r.varint(what)
	if v < math.MinInt32 || v > math.MaxInt32 {
		r.fail(what)
		return 0
	}
	return int32(v)
}

func (r *rbuf) str(what string) string {
	n := r.uvarint(what)
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail(what)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// readRequest asks a replica for batches of its log (replica.read), for a
// replica catching up to a snapshot.
type readRequest struct {
	Topic     string
	Partition int32
	Offset    int64
	MaxBytes  int32
}

func (q readRequest) encode() []byte {
	var w wbuf
	w.str(q.Topic)
	w.varint(int64(q.Partition))
	w.varint(q.Offset)
	w.varint(int64(q.MaxBytes))
	return w.b
}

func decodeReadRequest(b []byte) (readRequest, error) {
	r := rbuf{b: b}
	q := readRequest{Topic: r.str("topic"), Partition: r.int32("partition"), Offset: r.varint("offset"), MaxBytes: r.int32("max bytes")}
	if r.err == nil && (len(r.b) != 0 || q.Offset < 0 || q.MaxBytes <= 0) {
		r.fail("read request")
	}
	return q, r.err
}

// readResponse carries whole batches from Offset on, as stored; when the
// offset is below the replica's log start, Records is empty and Start
// tells where the log begins.
type readResponse struct {
	Start   int64 // the replica's log start offset
	End     int64 // the replica's high watermark
	Records []byte
}

func (p readResponse) encode() []byte {
	var w wbuf
	w.varint(p.Start)
	w.varint(p.End)
	w.b = append(w.b, p.Records...)
	return w.b
}

func decodeReadResponse(b []byte) (readResponse, error) {
	r := rbuf{b: b}
	p := readResponse{Start: r.varint("log start"), End: r.varint("high watermark")}
	if r.err == nil && (p.Start < 0 || p.End < p.Start) {
		r.fail("read response offsets")
	}
	p.Records = r.b
	return p, r.err
}

// isrReport is one follower replica's progress, sent to its leader.
type isrReport struct {
	Topic     string
	Partition int32
	Term      uint64 // the follower's current term
	Applied   uint64 // the follower's last applied Raft index
}

// encodeISRReports encodes the reports of node from for one peer
// (replica.isr): all partitions from follows that the peer leads.
func encodeISRReports(from int32, rs []isrReport) []byte {
	var w wbuf
	w.varint(int64(from))
	w.uvarint(uint64(len(rs)))
	for _, x := range rs {
		w.str(x.Topic)
		w.varint(int64(x.Partition))
		w.uvarint(x.Term)
		w.uvarint(x.Applied)
	}
	return w.b
}

func decodeISRReports(b []byte) (int32, []isrReport, error) {
	r := rbuf{b: b}
	from := r.int32("node id")
	n := r.uvarint("report count")
	if r.err != nil {
		return 0, nil, r.err
	}
	// Each report takes at least four bytes: a bound before allocating.
	if n > uint64(len(r.b)/4) {
		return 0, nil, fmt.Errorf("%w: %d reports in %d bytes", ErrCorrupt, n, len(r.b))
	}
	rs := make([]isrReport, 0, n)
	for i := uint64(0); i < n && r.err == nil; i++ {
		rs = append(rs, isrReport{Topic: r.str("topic"), Partition: r.int32("partition"), Term: r.uvarint("term"), Applied: r.uvarint("applied index")})
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return 0, nil, r.err
	}
	return from, rs, nil
}
