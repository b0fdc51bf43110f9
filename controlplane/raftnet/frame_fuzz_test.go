package raftnet

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

const fuzzMaxFrame = 1 << 20

// seedFrames returns well-formed frames of every kind, back to back.
func seedFrames(t testing.TB) [][]byte {
	var seeds [][]byte
	req := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: 3, ID: []byte("n0"), Addr: []byte("127.0.0.1:9093")},
		Term:      2, Leader: []byte("127.0.0.1:9093"), PrevLogEntry: 10, PrevLogTerm: 1, LeaderCommitIndex: 9,
		Entries: []*raft.Log{{Index: 11, Term: 2, Data: []byte("payload"), AppendedAt: time.Unix(5, 6)}},
	}
	vote := &raft.RequestVoteRequest{Term: 3, Candidate: []byte("c"), LastLogIndex: 4, LastLogTerm: 2}
	snap := &raft.InstallSnapshotRequest{Term: 3, Size: 5, Configuration: []byte{1, 2}}
	msgs := []struct {
		k    kind
		op   uint8
		name string
		msg  any
	}{
		{kindRequest, opAppendEntries, "topic-0", req},
		{kindRequest, opRequestVote, "__meta", vote},
		{kindRequest, opInstallSnapshot, "g", snap},
		{kindRequest, opTimeoutNow, "g", &raft.TimeoutNowRequest{}},
		{kindResponse, opAppendEntries, "", &raft.AppendEntriesResponse{Term: 2, LastLog: 11, Success: true}},
	}
	var all []byte
	for _, m := range msgs {
		var e encoder
		if err := encodeMessage(&e, m.msg); err != nil {
			t.Fatal(err)
		}
		f := encodeFrame(newOutFrame(m.k, m.op, 42, m.name, e.finish()))
		seeds = append(seeds, f)
		all = append(all, f...)
	}
	for _, f := range [][]byte{
		encodeFrame(newOutFrame(kindChunk, chunkData, 7, "", [][]byte{[]byte("snapshot bytes")})),
		encodeFrame(newOutFrame(kindChunk, chunkEOF, 7, "", nil)),
		encodeFrame(newOutFrame(kindWindow, 0, 7, "", [][]byte{{0x80, 0x80, 0x40}})),
		encodeFrame(newOutFrame(kindCancel, 0, 9, "", nil)),
		encodeFrame(newOutFrame(kindError, codeUnknownGroup, 9, "", [][]byte{[]byte("no such group")})),
		encodeFrame(newOutFrame(kindRequest, opCall, 3, "echo", [][]byte{{0x05}, []byte("hi")})),
		helloFrame("127.0.0.1:9093", laneData),
	} {
		seeds = append(seeds, f)
		all = append(all, f...)
	}
	seeds = append(seeds, all, all[:len(all)-3])
	return seeds
}

// FuzzReadFrame feeds arbitrary bytes to the frame reader and to the
// decoders of whatever frames come out. Nothing may panic; every failure is
// an error that closes the connection.
func FuzzReadFrame(f *testing.F) {
	for _, s := range seedFrames(f) {
		f.Add(s)
	}
	f.Add([]byte{0, 0, 0, 0})
	f.Add(bytes.Repeat([]byte{0xff}, 40))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := newFrameReader(bytes.NewReader(data), 512, fuzzMaxFrame)
		for {
			fm, err := fr.next()
			if err != nil {
				if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrProtocol) {
					t.Fatalf("unexpected error class: %v", err)
				}
				return
			}
			if len(fm.payload)+len(fm.name) > fuzzMaxFrame {
				t.Fatalf("frame larger than the limit: %d", len(fm.payload))
			}
			if fm.kind == kindRequest && fm.op != opCall {
				checkDecodeRoundTrip(t, fm.op, fm.payload)
			}
			if fm.kind == kindChunk {
				st := &inStream{s: &session{peer: "fuzz", m: &Mux{}}, wake: make(chan struct{}, 1)}
				_ = st.push(fm)
			}
		}
	})
}

// checkDecodeRoundTrip requires that whatever decodes re-encodes to
// something that decodes to the same message.
func checkDecodeRoundTrip(t *testing.T, op uint8, payload []byte) {
	msg, err := decodeRequest(op, payload)
	if err != nil {
		if !errors.Is(err, ErrProtocol) {
			t.Fatalf("decode error is not a protocol error: %v", err)
		}
		return
	}
	again, err := decodeRequest(op, encodeFlat(t, msg))
	if err != nil {
		t.Fatalf("re-decode: %v", err)
	}
	if !reflect.DeepEqual(msg, again) {
		t.Fatalf("round trip changed the message:\n%+v\n%+v", msg, again)
	}
}

func TestReadFrameRejectsMalformedHeaders(t *testing.T) {
	good := encodeFrame(newOutFrame(kindRequest, opTimeoutNow, 1, "g", [][]byte{{0, 0, 0}}))
	cases := map[string]func([]byte){
		"kind zero":       func(b []byte) { b[4] = 0 },
		"unknown kind":    func(b []byte) { b[4] = byte(kindMax) + 1 },
		"name too long":   func(b []byte) { b[6], b[7] = 0xff, 0xff },
		"name past frame": func(b []byte) { b[7] = 200 },
		"frame too large": func(b []byte) { b[0] = 0x7f },
	}
	for name, corrupt := range cases {
		t.Run(name, func(t *testing.T) {
			b := append([]byte(nil), good...)
			corrupt(b)
			_, err := newFrameReader(bytes.NewReader(b), 512, fuzzMaxFrame).next()
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("got %v, want a protocol error", err)
			}
		})
	}
	_, err := newFrameReader(bytes.NewReader(good[:len(good)-1]), 512, fuzzMaxFrame).next()
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated frame: got %v", err)
	}
}

// TestMalformedFrameClosesOnlyThatConnection speaks raw TCP to a Mux: after a
// valid handshake, garbage closes the connection, and the Mux keeps serving
// others.
func TestMalformedFrameClosesOnlyThatConnection(t *testing.T) {
	checkGoroutines(t)
	srv := newTestMux(t, "127.0.0.1:0")
	srv.Handle("echo", func(_ context.Context, _ string, req []byte) ([]byte, error) { return req, nil })
	cli := newTestMux(t, "127.0.0.1:0")
	if _, err := cli.Call(context.Background(), srv.LocalAddr(), "echo", []byte("x")); err != nil {
		t.Fatalf("call before: %v", err)
	}

	for name, garbage := range map[string][]byte{
		"bad kind":        {0, 0, 0, 1, 99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0},
		"bad request":     encodeFrame(newOutFrame(kindRequest, opAppendEntries, 1, "g", [][]byte{{0xff}})),
		"response to srv": encodeFrame(newOutFrame(kindResponse, opAppendEntries, 1, "", nil)),
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.LocalAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Write(append([]byte(preface), helloFrame("127.0.0.1:1", laneCtl)...)); err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(conn)
			var hdr [frameHeaderLen]byte
			if f, err := readFrame(r, &hdr, maxHello); err != nil || f.kind != kindHello {
				t.Fatalf("hello reply: %+v %v", f, err)
			}
			if _, err := conn.Write(garbage); err != nil {
				t.Fatal(err)
			}
			if _, err := r.ReadByte(); err == nil {
				t.Fatal("server answered garbage instead of closing")
			}
		})
	}
	if _, err := cli.Call(context.Background(), srv.LocalAddr(), "echo", []byte("y")); err != nil {
		t.Fatalf("call after: %v", err)
	}
	conn, err := net.Dial("tcp", srv.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("server answered an HTTP request")
	}
}
