package raftnet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// serveRPCs answers the RPCs of g with fn until the test ends.
func serveRPCs(t *testing.T, g *GroupTransport, fn func(rpc raft.RPC)) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case rpc := <-g.Consumer():
				fn(rpc)
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// answerAppend acknowledges every AppendEntries.
func answerAppend(rpc raft.RPC) {
	req, ok := rpc.Command.(*raft.AppendEntriesRequest)
	if !ok {
		rpc.Respond(nil, fmt.Errorf("unexpected %T", rpc.Command))
		return
	}
	last := req.PrevLogEntry
	if n := len(req.Entries); n > 0 {
		last = req.Entries[n-1].Index
	}
	rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term, LastLog: last, Success: true}, nil)
}

func TestUnknownGroupFailsFast(t *testing.T) {
	checkGoroutines(t)
	a := newTestMux(t, "127.0.0.1:0")
	b := newTestMux(t, "127.0.0.1:0")
	ga := a.Transport("topic-7")
	start := time.Now()
	var resp raft.RequestVoteResponse
	err := ga.RequestVote("n1", raft.ServerAddress(b.LocalAddr()), &raft.RequestVoteRequest{Term: 1}, &resp)
	if !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("got %v, want ErrUnknownGroup", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("unknown group took %v to fail", d)
	}

	// Once the replica exists the same request goes through ...
	gb := b.Transport("topic-7")
	serveRPCs(t, gb, func(rpc raft.RPC) {
		rpc.Respond(&raft.RequestVoteResponse{Term: 1, Granted: true}, nil)
	})
	if err := ga.RequestVote("n1", raft.ServerAddress(b.LocalAddr()), &raft.RequestVoteRequest{Term: 1}, &resp); err != nil || !resp.Granted {
		t.Fatalf("vote after the group appeared: %+v %v", resp, err)
	}
	// ... and after it is removed it is unknown again.
	b.RemoveGroup("topic-7")
	if err := ga.RequestVote("n1", raft.ServerAddress(b.LocalAddr()), &raft.RequestVoteRequest{Term: 1}, &resp); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("after RemoveGroup: %v", err)
	}
	// A closed transport refuses to send.
	_ = ga.Close()
	if err := ga.RequestVote("n1", raft.ServerAddress(b.LocalAddr()), &raft.RequestVoteRequest{Term: 1}, &resp); !errors.Is(err, ErrTransportClosed) {
		t.Fatalf("closed transport: %v", err)
	}
	if a.Transport("topic-7") == ga {
		t.Fatal("Transport returned a closed transport")
	}
}

// TestSlowGroupDoesNotBlockOthers: one group's consumer never reads. Other
// groups on the same connection, and its own heartbeats, are still served;
// its requests fail with ErrBusy after the RPC timeout instead of hanging.
func TestSlowGroupDoesNotBlockOthers(t *testing.T) {
	checkGoroutines(t)
	short := func(c *Config) { c.RPCTimeout = 1500 * time.Millisecond }
	a := newTestMux(t, "127.0.0.1:0", short)
	b := newTestMux(t, "127.0.0.1:0", short)
	target := raft.ServerAddress(b.LocalAddr())

	stuck := b.Transport("stuck") // nobody reads its consumer
	var heartbeats atomic.Int32
	stuck.SetHeartbeatHandler(func(rpc raft.RPC) {
		heartbeats.Add(1)
		answerAppend(rpc)
	})
	serveRPCs(t, b.Transport("live"), answerAppend)

	slowDone := make(chan error, 1)
	go func() {
		var resp raft.AppendEntriesResponse
		req := &raft.AppendEntriesRequest{Term: 1, Leader: []byte("x"), LeaderCommitIndex: 5}
		slowDone <- a.Transport("stuck").AppendEntries("n1", target, req, &resp)
	}()

	for i := range 20 {
		var resp raft.AppendEntriesResponse
		req := &raft.AppendEntriesRequest{Term: 1, Leader: []byte("x"), PrevLogEntry: uint64(i),
			Entries: []*raft.Log{{Index: uint64(i + 1), Term: 1, Data: []byte("d")}}}
		start := time.Now()
		if err := a.Transport("live").AppendEntries("n1", target, req, &resp); err != nil || !resp.Success {
			t.Fatalf("live group append %d: %+v %v", i, resp, err)
		}
		if d := time.Since(start); d > 750*time.Millisecond {
			t.Fatalf("live group waited %v behind the stuck one", d)
		}
		hb := &raft.AppendEntriesRequest{Term: 1, Leader: []byte("x")}
		if err := a.Transport("stuck").AppendEntries("n1", target, hb, &resp); err != nil || !resp.Success {
			t.Fatalf("heartbeat to stuck group: %+v %v", resp, err)
		}
	}
	if heartbeats.Load() != 20 {
		t.Fatalf("heartbeat handler ran %d times, want 20", heartbeats.Load())
	}
	select {
	case err := <-slowDone:
		if !errors.Is(err, ErrBusy) {
			t.Fatalf("stuck group's request: got %v, want ErrBusy", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request to the stuck group hung")
	}
}

func TestPipelineKeepsOrder(t *testing.T) {
	checkGoroutines(t)
	a := newTestMux(t, "127.0.0.1:0")
	b := newTestMux(t, "127.0.0.1:0")
	var mu sync.Mutex
	var seen []uint64
	serveRPCs(t, b.Transport("g"), func(rpc raft.RPC) {
		req := rpc.Command.(*raft.AppendEntriesRequest)
		mu.Lock()
		seen = append(seen, req.PrevLogEntry)
		mu.Unlock()
		answerAppend(rpc)
	})
	p, err := a.Transport("g").AppendEntriesPipeline("n1", raft.ServerAddress(b.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	sent := make(chan *raft.AppendEntriesRequest, n)
	go func() {
		defer close(sent)
		for i := range n {
			req := &raft.AppendEntriesRequest{Term: 2, Leader: []byte("x"), PrevLogEntry: uint64(i),
				Entries: []*raft.Log{{Index: uint64(i + 1), Term: 2, Data: make([]byte, 100*i)}}}
			if _, err := p.AppendEntries(req, new(raft.AppendEntriesResponse)); err != nil {
				t.Errorf("pipeline append %d: %v", i, err)
				return
			}
			sent <- req
		}
	}()
	for i := range n {
		var f raft.AppendFuture
		select {
		case f = <-p.Consumer():
		case <-time.After(5 * time.Second):
			t.Fatalf("future %d never completed", i)
		}
		if err := f.Error(); err != nil {
			t.Fatalf("future %d: %v", i, err)
		}
		if got := f.Request().PrevLogEntry; got != uint64(i) {
			t.Fatalf("future %d completed out of order (prev %d)", i, got)
		}
		if r := f.Response(); !r.Success || r.LastLog != uint64(i+1) {
			t.Fatalf("future %d response %+v", i, r)
		}
	}
	for range sent {
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AppendEntries(&raft.AppendEntriesRequest{}, new(raft.AppendEntriesResponse)); !errors.Is(err, ErrPipelineClosed) {
		t.Fatalf("append on closed pipeline: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, prev := range seen {
		if prev != uint64(i) {
			t.Fatalf("receiver saw request %d at position %d", prev, i)
		}
	}
}

// Raft's pipeline decoder stops reading the pipeline's answers as soon as
// one fails, while its sender may still be sending. A send must then
// neither hang (that stopped the group's replication to the follower for
// good: heartbeats went on, entries and the commit index did not) nor
// wait longer than the RPC timeout.
func TestPipelineSendOutlivesItsDecoder(t *testing.T) {
	checkGoroutines(t)
	const rpcTimeout = 300 * time.Millisecond
	a := newTestMux(t, "127.0.0.1:0", func(c *Config) { c.RPCTimeout = rpcTimeout })
	b := newTestMux(t, "127.0.0.1:0")
	serveRPCs(t, b.Transport("g"), answerAppend)
	p, err := a.Transport("g").AppendEntriesPipeline("n1", raft.ServerAddress(b.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const sends = 200
	done := make(chan int, 1)
	go func() {
		n := 0
		defer func() { done <- n }()
		for i := range sends {
			req := &raft.AppendEntriesRequest{Term: 2, Leader: []byte("x"), PrevLogEntry: uint64(i),
				Entries: []*raft.Log{{Index: uint64(i + 1), Term: 2}}}
			start := time.Now()
			_, err := p.AppendEntries(req, new(raft.AppendEntriesResponse))
			if took := time.Since(start); took > rpcTimeout+time.Second {
				t.Errorf("send %d took %v", i, took)
			}
			if err != nil {
				if !errors.Is(err, ErrTimeout) {
					t.Errorf("send %d: %v, want a timeout", i, err)
				}
				return // Raft stops sending on the first error
			}
			n++
		}
	}()
	// Nobody reads p.Consumer(), as after Raft's decoder returned.
	select {
	case n := <-done:
		t.Logf("%d sends went out before the unread answers stopped them", n)
	case <-time.After(20 * time.Second):
		t.Fatal("a pipeline send hung once nobody read the answers")
	}
}

func TestPipelineCloseFailsInflight(t *testing.T) {
	checkGoroutines(t)
	a := newTestMux(t, "127.0.0.1:0")
	b := newTestMux(t, "127.0.0.1:0")
	b.Transport("g") // exists, but nobody consumes
	p, err := a.Transport("g").AppendEntriesPipeline("n1", raft.ServerAddress(b.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1, LeaderCommitIndex: 1}, new(raft.AppendEntriesResponse))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrPipelineClosed) {
			t.Fatalf("in-flight future: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight future never completed after Close")
	}
}

// snapshotData is a deterministic pseudo-random stream, generated as it is
// read so the sender never holds the snapshot in memory.
type snapshotData struct {
	rng  *rand.ChaCha8
	left int64
	fail error // returned instead of the last bytes, if set
}

func (s *snapshotData) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	if s.fail != nil && s.left <= int64(len(p)) {
		return 0, s.fail
	}
	n := int(min(int64(len(p)), s.left))
	_, _ = s.rng.Read(p[:n])
	s.left -= int64(n)
	return n, nil
}

func TestInstallSnapshotStreams(t *testing.T) {
	checkGoroutines(t)
	a := newTestMux(t, "127.0.0.1:0")
	b := newTestMux(t, "127.0.0.1:0")
	const size = 9<<20 + 123
	var want [32]byte
	{
		h := sha256.New()
		_, _ = io.Copy(h, &snapshotData{rng: rand.NewChaCha8([32]byte{1}), left: size})
		copy(want[:], h.Sum(nil))
	}
	got := make(chan [32]byte, 1)
	serveRPCs(t, b.Transport("g"), func(rpc raft.RPC) {
		req := rpc.Command.(*raft.InstallSnapshotRequest)
		h := sha256.New()
		// Read slowly in small pieces so the window has to refill.
		buf := make([]byte, 100<<10)
		var n int64
		for {
			m, err := rpc.Reader.Read(buf)
			h.Write(buf[:m])
			n += int64(m)
			if err == io.EOF {
				break
			}
			if err != nil {
				rpc.Respond(nil, err)
				return
			}
		}
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		got <- sum
		rpc.Respond(&raft.InstallSnapshotResponse{Term: req.Term, Success: n == req.Size}, nil)
	})

	var resp raft.InstallSnapshotResponse
	req := &raft.InstallSnapshotRequest{Term: 4, LastLogIndex: 100, Size: size, Configuration: []byte("conf")}
	data := &snapshotData{rng: rand.NewChaCha8([32]byte{1}), left: size}
	if err := a.Transport("g").InstallSnapshot("n1", raft.ServerAddress(b.LocalAddr()), req, &resp, data); err != nil {
		t.Fatal(err)
	}
	if !resp.Success || resp.Term != 4 {
		t.Fatalf("response %+v", resp)
	}
	if sum := <-got; sum != want {
		t.Fatal("snapshot data corrupted in transit")
	}
	st := a.Stats()
	t.Logf("sender stats: %+v", st)
	if st.FramesSent < size/snapshotChunk {
		t.Fatalf("snapshot went in %d frames, expected chunks of %d bytes", st.FramesSent, snapshotChunk)
	}

	// A sender that cannot read its snapshot aborts the stream; the
	// receiver's reader fails instead of waiting.
	readErr := errors.New("disk on fire")
	data = &snapshotData{rng: rand.NewChaCha8([32]byte{2}), left: 3 << 20, fail: readErr}
	err := a.Transport("g").InstallSnapshot("n1", raft.ServerAddress(b.LocalAddr()), req, &resp, data)
	if !errors.Is(err, readErr) {
		t.Fatalf("aborted snapshot: %v", err)
	}
	// The connection is still good for the next request.
	req.Size = 10
	data = &snapshotData{rng: rand.NewChaCha8([32]byte{3}), left: 10}
	if err := a.Transport("g").InstallSnapshot("n1", raft.ServerAddress(b.LocalAddr()), req, &resp, data); err != nil || !resp.Success {
		t.Fatalf("small snapshot after abort: %+v %v", resp, err)
	}
	<-got
}

func TestStatsCountTraffic(t *testing.T) {
	a := newTestMux(t, "127.0.0.1:0")
	b := newTestMux(t, "127.0.0.1:0")
	b.Handle("echo", func(_ context.Context, _ string, req []byte) ([]byte, error) { return req, nil })
	payload := bytes.Repeat([]byte{1}, 1000)
	if _, err := a.Call(context.Background(), b.LocalAddr(), "echo", payload); err != nil {
		t.Fatal(err)
	}
	sa, sb := a.Stats(), b.Stats()
	if sa.BytesSent < 1000 || sa.BytesReceived < 1000 || sb.BytesSent != sa.BytesReceived || sb.BytesReceived != sa.BytesSent {
		t.Fatalf("byte counters disagree: a %+v b %+v", sa, sb)
	}
	if sa.FramesSent != 1 || sb.FramesReceived != 1 || sa.Flushes < 1 {
		t.Fatalf("frame counters: a %+v b %+v", sa, sb)
	}
}

// TestSilentPeerTimesOut: a peer that completes the handshake and then
// never answers (a hung process, a dead host without a FIN) makes requests
// fail after the RPC timeout; the silent connection is then dropped and the
// next request dials again.
func TestSilentPeerTimesOut(t *testing.T) {
	checkGoroutines(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var accepted atomic.Int32
	conns := make(chan net.Conn, 8)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns <- c
			// Answer the hello, then swallow everything.
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, len(preface)+frameHeaderLen+64)
				_, _ = io.ReadAtLeast(c, buf, len(preface)+frameHeaderLen)
				_, _ = c.Write(helloFrame(ln.Addr().String(), laneCtl))
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(conns)
		for c := range conns {
			c.Close()
		}
		wg.Wait()
	})

	m := newTestMux(t, "127.0.0.1:0", func(c *Config) { c.RPCTimeout = 300 * time.Millisecond })
	g := m.Transport("g")
	target := raft.ServerAddress(ln.Addr().String())
	for i := 1; i <= 2; i++ {
		start := time.Now()
		var resp raft.RequestVoteResponse
		err := g.RequestVote("n1", target, &raft.RequestVoteRequest{Term: 1}, &resp)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("request %d to a silent peer: %v", i, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("request %d took %v with a 300ms timeout", i, d)
		}
		if got := accepted.Load(); got != int32(i) {
			t.Fatalf("after request %d: %d connections, want %d (silent one dropped, redialed)", i, got, i)
		}
	}
}

// TestRaftRequestsWaitForARestartingPeer: a Raft request to a peer that is
// down waits for it (up to the RPC timeout) instead of failing at once, so
// that a restart costs Raft one failed request rather than the dozens that
// would push its replication backoff towards 41 s.
func TestRaftRequestsWaitForARestartingPeer(t *testing.T) {
	checkGoroutines(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the peer is down

	a := newTestMux(t, "127.0.0.1:0")
	ga := a.Transport("g")
	up := make(chan struct{})
	go func() {
		defer close(up)
		// The peer comes back only once the request has found it down.
		for deadline := time.Now().Add(5 * time.Second); a.Stats().DialFailures == 0 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		b := newTestMux(t, addr)
		serveRPCs(t, b.Transport("g"), func(rpc raft.RPC) {
			rpc.Respond(&raft.RequestVoteResponse{Term: 1, Granted: true}, nil)
		})
	}()
	var resp raft.RequestVoteResponse
	if err := ga.RequestVote("n1", raft.ServerAddress(addr), &raft.RequestVoteRequest{Term: 1}, &resp); err != nil || !resp.Granted {
		t.Fatalf("vote across the peer's restart: %+v %v", resp, err)
	}
	<-up

	// Internal RPC still fails fast, so callers can try elsewhere.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := a.Call(ctx, deadAddr, "x", nil); err == nil {
		t.Fatal("call to a closed port succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("internal RPC to a dead peer took %v to fail", d)
	}
}

// OnStored hears of every AppendEntries with entries that a follower
// accepted, sent alone or on a pipeline, and of nothing else.
func TestOnStoredHearsAcceptedEntries(t *testing.T) {
	checkGoroutines(t)
	a := newTestMux(t, "127.0.0.1:0")
	b := newTestMux(t, "127.0.0.1:0")
	serveRPCs(t, b.Transport("g"), func(rpc raft.RPC) {
		if req := rpc.Command.(*raft.AppendEntriesRequest); len(req.Entries) > 0 && req.Entries[0].Index == 13 {
			rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term}, nil) // refused
			return
		}
		answerAppend(rpc)
	})
	g := a.Transport("g")
	var mu sync.Mutex
	var heard []Stored
	g.OnStored(func(s Stored) {
		mu.Lock()
		heard = append(heard, s)
		mu.Unlock()
	})
	target := raft.ServerAddress(b.LocalAddr())
	entries := func(from, to uint64) []*raft.Log {
		var ls []*raft.Log
		for i := from; i <= to; i++ {
			ls = append(ls, &raft.Log{Index: i, Term: 3, Data: []byte("x")})
		}
		return ls
	}
	send := func(prev uint64, es []*raft.Log) {
		t.Helper()
		req := &raft.AppendEntriesRequest{Term: 3, Leader: []byte("x"), PrevLogEntry: prev, Entries: es}
		if err := g.AppendEntries("n1", target, req, new(raft.AppendEntriesResponse)); err != nil {
			t.Fatal(err)
		}
	}
	send(0, entries(1, 4))
	send(4, nil) // a heartbeat
	send(12, entries(13, 13))

	p, err := g.AppendEntriesPipeline("n1", target)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]uint64{{5, 7}, {8, 10}} {
		req := &raft.AppendEntriesRequest{Term: 3, Leader: []byte("x"), PrevLogEntry: r[0] - 1, Entries: entries(r[0], r[1])}
		if _, err := p.AppendEntries(req, new(raft.AppendEntriesResponse)); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		select {
		case f := <-p.Consumer():
			if err := f.Error(); err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("pipelined append never completed")
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []Stored{{"n1", 3, 4}, {"n1", 3, 7}, {"n1", 3, 10}}
	if !slices.Equal(heard, want) {
		t.Fatalf("heard %v, want %v", heard, want)
	}
}
