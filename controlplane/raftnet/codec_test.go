package raftnet

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// fill sets every field of v (recursively) to a random non-zero value, so
// that a field the codec forgets fails the round trip. raft adding a field
// to a message makes this test fail until the codec carries it.
func fill(t *testing.T, rng *rand.Rand, v reflect.Value) {
	t.Helper()
	if v.Type() == reflect.TypeFor[time.Time]() {
		v.Set(reflect.ValueOf(time.Unix(0, rng.Int64N(1<<62))))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if !v.Type().Field(i).IsExported() {
				t.Fatalf("%s has unexported field %s", v.Type(), v.Type().Field(i).Name)
			}
			fill(t, rng, v.Field(i))
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, rng, v.Elem())
	case reflect.Slice:
		n := 1 + rng.IntN(3)
		if v.Type().Elem().Kind() == reflect.Uint8 {
			b := make([]byte, []int{1, 7, bigPart + 3}[rng.IntN(3)])
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			v.SetBytes(b)
			return
		}
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := 0; i < n; i++ {
			fill(t, rng, s.Index(i))
		}
		v.Set(s)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Uint8:
		v.SetUint(uint64(1 + rng.IntN(250)))
	case reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1 + rng.Uint64N(1<<uint(v.Type().Bits()-1)))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(rng.Int64N(1<<uint(v.Type().Bits()-2)) - 1<<uint(v.Type().Bits()-3))
	default:
		t.Fatalf("fill: unhandled kind %s in %s", v.Kind(), v.Type())
	}
}

// flatten joins an encoder's parts the way they go on the wire.
func flatten(parts [][]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func encodeFlat(t testing.TB, msg any) []byte {
	t.Helper()
	var e encoder
	if err := encodeMessage(&e, msg); err != nil {
		t.Fatalf("encode %T: %v", msg, err)
	}
	return flatten(e.finish())
}

// normalizeTimes makes time values comparable with reflect.DeepEqual.
func normalizeTimes(msg any) {
	if r, ok := msg.(*raft.AppendEntriesRequest); ok {
		for _, l := range r.Entries {
			if !l.AppendedAt.IsZero() {
				l.AppendedAt = time.Unix(0, l.AppendedAt.UnixNano())
			}
		}
	}
}

func TestCodecRoundTripsEveryField(t *testing.T) {
	requests := map[uint8]func() any{
		opAppendEntries:   func() any { return new(raft.AppendEntriesRequest) },
		opRequestVote:     func() any { return new(raft.RequestVoteRequest) },
		opRequestPreVote:  func() any { return new(raft.RequestPreVoteRequest) },
		opInstallSnapshot: func() any { return new(raft.InstallSnapshotRequest) },
		opTimeoutNow:      func() any { return new(raft.TimeoutNowRequest) },
	}
	responses := []any{
		new(raft.AppendEntriesResponse), new(raft.RequestVoteResponse),
		new(raft.RequestPreVoteResponse), new(raft.InstallSnapshotResponse),
		new(raft.TimeoutNowResponse),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 20; round++ {
		for op, mk := range requests {
			in := mk()
			fill(t, rng, reflect.ValueOf(in).Elem())
			got, err := decodeRequest(op, encodeFlat(t, in))
			if err != nil {
				t.Fatalf("decode %T: %v", in, err)
			}
			normalizeTimes(in)
			if !reflect.DeepEqual(in, got) {
				t.Fatalf("%T did not survive the round trip:\n in: %+v\nout: %+v", in, in, got)
			}
		}
		for _, proto := range responses {
			in := reflect.New(reflect.TypeOf(proto).Elem()).Interface()
			fill(t, rng, reflect.ValueOf(in).Elem())
			out := reflect.New(reflect.TypeOf(proto).Elem()).Interface()
			op, ok := responseOp(in)
			if !ok {
				t.Fatalf("no op for %T", in)
			}
			if err := decodeResponse(op, encodeFlat(t, in), out); err != nil {
				t.Fatalf("decode %T: %v", in, err)
			}
			if !reflect.DeepEqual(in, out) {
				t.Fatalf("%T did not survive the round trip:\n in: %+v\nout: %+v", in, in, out)
			}
		}
	}
}

func TestCodecKeepsHeartbeatShape(t *testing.T) {
	hb := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: 3, ID: []byte("n1"), Addr: []byte("127.0.0.1:1")},
		Term:      7,
		Leader:    []byte("127.0.0.1:1"),
	}
	got, err := decodeRequest(opAppendEntries, encodeFlat(t, hb))
	if err != nil {
		t.Fatal(err)
	}
	if !isHeartbeat(got.(*raft.AppendEntriesRequest)) {
		t.Fatalf("heartbeat not recognised after decoding: %+v", got)
	}
	notHB := *hb
	notHB.LeaderCommitIndex = 1
	got, err = decodeRequest(opAppendEntries, encodeFlat(t, &notHB))
	if err != nil {
		t.Fatal(err)
	}
	if isHeartbeat(got.(*raft.AppendEntriesRequest)) {
		t.Fatal("append with a commit index taken for a heartbeat")
	}
	// nil and empty byte strings stay apart.
	v := &raft.RequestVoteRequest{Candidate: []byte{}}
	got, err = decodeRequest(opRequestVote, encodeFlat(t, v))
	if err != nil {
		t.Fatal(err)
	}
	if c := got.(*raft.RequestVoteRequest).Candidate; c == nil || len(c) != 0 {
		t.Fatalf("empty candidate decoded as %#v", c)
	}
	if id := got.(*raft.RequestVoteRequest).ID; id != nil {
		t.Fatalf("nil id decoded as %#v", id)
	}
}

func TestCodecDoesNotCopyLargeData(t *testing.T) {
	data := bytes.Repeat([]byte{0xab}, 1<<20)
	req := &raft.AppendEntriesRequest{Term: 1, Entries: []*raft.Log{{Index: 1, Term: 1, Data: data}}}
	var e encoder
	if err := encodeMessage(&e, req); err != nil {
		t.Fatal(err)
	}
	parts := e.finish()
	found := false
	for _, p := range parts {
		if len(p) == len(data) && &p[0] == &data[0] {
			found = true
		}
	}
	if !found {
		t.Fatal("encoder copied the entry data instead of referencing it")
	}
	payload := flatten(parts)
	got, err := decodeRequest(opAppendEntries, payload)
	if err != nil {
		t.Fatal(err)
	}
	d := got.(*raft.AppendEntriesRequest).Entries[0].Data
	start := len(payload) - len(data) - 2 // extensions (nil) and time flag follow
	if &d[0] != &payload[start] {
		t.Fatal("decoder copied the entry data instead of aliasing the frame")
	}
}

func TestDecodeRejectsTruncated(t *testing.T) {
	req := &raft.AppendEntriesRequest{
		Term:    3,
		Leader:  []byte("x"),
		Entries: []*raft.Log{{Index: 1, Term: 3, Data: []byte("hello")}},
	}
	b := encodeFlat(t, req)
	for n := 0; n < len(b); n++ {
		if _, err := decodeRequest(opAppendEntries, b[:n]); err == nil {
			t.Fatalf("decoding %d of %d bytes succeeded", n, len(b))
		}
	}
	if _, err := decodeRequest(99, b); err == nil {
		t.Fatal("unknown request type decoded")
	}
}
