package raftnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Snapshot streaming: the sender may have snapshotWindow bytes outstanding;
// the receiver grants bytes back as Raft reads them, in steps of at least
// half a window, so at most one window of a snapshot is held in memory.
const (
	snapshotChunk  = 256 << 10
	snapshotWindow = 1 << 20
	// snapshotRate is the slowest restore speed that is not a failure:
	// after the last chunk, the sender waits RPCTimeout plus Size at this rate.
	snapshotRate = 8 << 20
)

// InstallSnapshot implements raft.Transport. It streams data in chunks on the
// data connection, interleaved with other groups' traffic.
func (g *GroupTransport) InstallSnapshot(_ raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	ctx, cancel := context.WithCancel(g.ctx)
	defer cancel()
	dialCtx, dialCancel := context.WithTimeout(ctx, g.m.cfg.RPCTimeout)
	s, c, err := g.send(dialCtx, laneData, target, opInstallSnapshot, args, true)
	dialCancel()
	if err != nil {
		return err
	}
	if r, done, err := g.streamSnapshot(ctx, s, c, data); done {
		if err != nil {
			return g.wrap(opInstallSnapshot, target, err)
		}
		return g.wrap(opInstallSnapshot, target, s.decode(r, resp))
	}
	wait := g.m.cfg.RPCTimeout + time.Duration(args.Size/snapshotRate)*time.Second
	ctx, cancel = context.WithTimeout(ctx, wait)
	defer cancel()
	r, err := s.wait(ctx, c)
	if err != nil {
		return g.wrap(opInstallSnapshot, target, err)
	}
	return g.wrap(opInstallSnapshot, target, s.decode(r, resp))
}

// streamSnapshot sends data as chunk frames within the granted window. done
// reports that the exchange ended early: the peer answered (r) or the
// transfer failed (err).
func (g *GroupTransport) streamSnapshot(ctx context.Context, s *session, c *call, data io.Reader) (r result, done bool, err error) {
	timeout := g.m.cfg.RPCTimeout
	// abort tells the receiver to stop waiting for data and forgets the call.
	abort := func() {
		_ = s.send(newOutFrame(kindChunk, chunkAbort, c.id, "", nil))
		s.take(c.id)
	}
	var sent int64
	for {
		// Wait for credit, or for an early answer.
		for c.credit.Load()+snapshotWindow-sent <= 0 {
			t := time.NewTimer(timeout)
			select {
			case r = <-c.done:
				t.Stop()
				return r, true, r.err
			case <-c.creditWake:
			case <-t.C:
				abort()
				return result{}, true, fmt.Errorf("no window from %s for %v: %w", s.peer, timeout, ErrTimeout)
			case <-ctx.Done():
				t.Stop()
				abort()
				return result{}, true, ctxErr(ctx)
			}
			t.Stop()
		}
		select {
		case r = <-c.done:
			return r, true, r.err
		default:
		}
		n := min(int64(snapshotChunk), c.credit.Load()+snapshotWindow-sent)
		buf := make([]byte, n)
		read, rerr := io.ReadFull(data, buf)
		eof := errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF)
		if rerr != nil && !eof {
			abort()
			return result{}, true, fmt.Errorf("read snapshot: %w", rerr)
		}
		if read > 0 {
			if err := s.send(newOutFrame(kindChunk, chunkData, c.id, "", [][]byte{buf[:read]})); err != nil {
				s.take(c.id)
				return result{}, true, err
			}
			sent += int64(read)
		}
		if eof {
			if err := s.send(newOutFrame(kindChunk, chunkEOF, c.id, "", nil)); err != nil {
				s.take(c.id)
				return result{}, true, err
			}
			return result{}, false, nil
		}
	}
}

// inStream is the receiving end of a snapshot: Raft reads it as the
// InstallSnapshot RPC's Reader while the connection's reader fills it.
type inStream struct {
	s       *session
	id      uint64
	timeout time.Duration

	mu       sync.Mutex
	chunks   [][]byte
	buffered int   // bytes held in chunks
	unacked  int   // bytes read by Raft and not yet granted back
	eof      bool  // the sender sent its last chunk
	err      error // the transfer failed
	wake     chan struct{}
}

func newInStream(s *session, id uint64) *inStream {
	return &inStream{s: s, id: id, timeout: s.m.cfg.RPCTimeout, wake: make(chan struct{}, 1)}
}

// addStream registers st unless the session is closing.
func (s *session) addStream(st *inStream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false
	}
	s.streams[st.id] = st
	return true
}

func (s *session) dropStream(id uint64) {
	s.mu.Lock()
	if s.streams != nil {
		delete(s.streams, id)
	}
	s.mu.Unlock()
}

// push adds a chunk frame; called by the connection's reader, never blocks.
func (st *inStream) push(f inFrame) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.eof || st.err != nil {
		return nil
	}
	switch f.op {
	case chunkData:
		if st.buffered+len(f.payload) > snapshotWindow {
			return fmt.Errorf("%w: snapshot stream %d overran its window", ErrProtocol, f.id)
		}
		if len(f.payload) > 0 {
			st.chunks = append(st.chunks, f.payload)
			st.buffered += len(f.payload)
		}
	case chunkEOF:
		st.eof = true
	case chunkAbort:
		st.err = fmt.Errorf("snapshot from %s: sender aborted", st.s.peer)
	default:
		return fmt.Errorf("%w: chunk flags %d", ErrProtocol, f.op)
	}
	st.notify()
	return nil
}

func (st *inStream) notify() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

func (st *inStream) fail(err error) {
	st.mu.Lock()
	if st.err == nil {
		st.err = err
	}
	st.mu.Unlock()
	st.notify()
}

// Read implements io.Reader for Raft. It fails if no data arrives within
// the RPC timeout.
func (st *inStream) Read(p []byte) (int, error) {
	for {
		st.mu.Lock()
		if len(st.chunks) > 0 {
			n := st.take(p)
			st.mu.Unlock()
			return n, nil
		}
		err, eof := st.err, st.eof
		st.mu.Unlock()
		if err != nil {
			return 0, err
		}
		if eof {
			return 0, io.EOF
		}
		t := time.NewTimer(st.timeout)
		select {
		case <-st.wake:
			t.Stop()
		case <-t.C:
			st.fail(fmt.Errorf("snapshot from %s: no data for %v: %w", st.s.peer, st.timeout, ErrTimeout))
		}
	}
}

// take copies buffered bytes into p and grants the window back in large
// steps. Caller holds st.mu.
func (st *inStream) take(p []byte) int {
	n := 0
	for n < len(p) && len(st.chunks) > 0 {
		c := copy(p[n:], st.chunks[0])
		n += c
		if c == len(st.chunks[0]) {
			st.chunks[0] = nil
			st.chunks = st.chunks[1:]
		} else {
			st.chunks[0] = st.chunks[0][c:]
		}
	}
	st.buffered -= n
	st.unacked += n
	if st.unacked >= snapshotWindow/2 && !st.eof {
		var e encoder
		e.uvarint(uint64(st.unacked))
		_ = st.s.send(newOutFrame(kindWindow, 0, st.id, "", e.finish()))
		st.unacked = 0
	}
	return n
}
