package raftnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Redial backoff after failed dials: doubling from redialBase up to
// redialMax. While it runs, internal RPC to the peer fails at once with
// ErrPeerUnreachable; Raft's own requests wait for the next dial
// (awaitSession).
const (
	redialBase = 10 * time.Millisecond
	redialMax  = time.Second
	maxHello   = 4096
)

// peer holds the outbound connections to one address.
type peer struct {
	addr string

	mu       sync.Mutex
	lanes    [numLanes]*session
	dialing  [numLanes]chan struct{} // closed when the dial in progress ends
	failures int
	retryAt  time.Time
	lastErr  error
}

// sessions returns the peer's open outbound sessions.
func (p *peer) sessions() []*session {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*session
	for _, s := range p.lanes {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// drop forgets a closed session.
func (p *peer) drop(s *session) {
	p.mu.Lock()
	if p.lanes[s.lane] == s {
		p.lanes[s.lane] = nil
	}
	p.mu.Unlock()
}

func (p *peer) resetBackoff() {
	p.mu.Lock()
	p.failures, p.retryAt, p.lastErr = 0, time.Time{}, nil
	p.mu.Unlock()
}

func (p *peer) noteFailure(err error) {
	p.failures++
	backoff := redialMax
	if p.failures < 8 {
		backoff = min(redialBase<<(p.failures-1), redialMax)
	}
	p.retryAt = time.Now().Add(backoff)
	p.lastErr = err
}

func (m *Mux) peer(addr string) (*peer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	p := m.peers[addr]
	if p == nil {
		p = &peer{addr: addr}
		m.peers[addr] = p
	}
	return p, nil
}

// session returns the open connection of lane l to addr, dialing it if
// needed. Concurrent callers share one dial.
func (m *Mux) session(ctx context.Context, addr string, l lane) (*session, error) {
	p, err := m.peer(addr)
	if err != nil {
		return nil, err
	}
	for {
		if m.isBlocked(addr) {
			return nil, fmt.Errorf("%s: %w", addr, ErrBlocked)
		}
		p.mu.Lock()
		if s := p.lanes[l]; s != nil && s.alive() {
			p.mu.Unlock()
			return s, nil
		}
		if ch := p.dialing[l]; ch != nil {
			p.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("dial %s: %w", addr, ctxErr(ctx))
			}
		}
		if wait := time.Until(p.retryAt); wait > 0 {
			last := p.lastErr
			p.mu.Unlock()
			return nil, fmt.Errorf("dial %s: %w (retry in %v): %w", addr, ErrPeerUnreachable, wait.Round(time.Millisecond), last)
		}
		ch := make(chan struct{})
		p.dialing[l] = ch
		p.mu.Unlock()

		s, err := m.dial(ctx, addr, l)

		p.mu.Lock()
		p.dialing[l] = nil
		close(ch)
		if err != nil {
			// Only the peer's failures count, not the caller giving up.
			if m.ctx.Err() == nil && ctx.Err() == nil && !errors.Is(err, ErrBlocked) {
				p.noteFailure(err)
			}
			p.mu.Unlock()
			m.stats.dialFailed.Add(1)
			return nil, err
		}
		p.failures, p.retryAt, p.lastErr = 0, time.Time{}, nil
		p.lanes[l] = s
		p.mu.Unlock()
		m.stats.dialed.Add(1)
		s.log.Debug("raftnet connection dialed")
		s.start()
		if m.isBlocked(addr) { // Block ran while we were dialing
			s.close(ErrBlocked)
			continue
		}
		return s, nil
	}
}

// awaitSession is session for Raft's own requests: while the peer is
// unreachable it waits for the next dial, up to patience, instead of
// failing at once. hashicorp/raft backs off exponentially after every
// failed request to a follower, up to 41 s, and never cuts that wait
// short; failing in microseconds through a node's restart would leave it
// unreplicated long after it is back. Waiting keeps the failure count to
// about one per patience.
func (m *Mux) awaitSession(ctx context.Context, addr string, l lane, patience time.Duration) (*session, error) {
	deadline := time.Now().Add(patience)
	for {
		s, err := m.session(ctx, addr, l)
		if err == nil || errors.Is(err, ErrBlocked) || errors.Is(err, ErrClosed) || ctx.Err() != nil {
			return s, err
		}
		wait := max(m.retryIn(addr), time.Millisecond)
		if time.Until(deadline) < wait {
			return nil, err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-m.ctx.Done():
			t.Stop()
			return nil, err
		}
	}
}

// retryIn is how long until the next dial to addr may start.
func (m *Mux) retryIn(addr string) time.Duration {
	p, err := m.peer(addr)
	if err != nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Until(p.retryAt)
}

// dial connects to addr and runs the dialer's side of the handshake.
func (m *Mux) dial(ctx context.Context, addr string, l lane) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.DialTimeout)
	defer cancel()
	stop := context.AfterFunc(m.ctx, cancel)
	defer stop()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetNoDelay(true)
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	// Abort the handshake as soon as ctx ends, not only at the deadline.
	unblock := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	peerAddr, err := m.handshake(conn, l)
	unblock()
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("handshake with %s: %w", addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	if peerAddr != addr {
		m.log.Debug("raft peer advertises another address", "dialed", addr, "advertised", peerAddr)
	}
	// Requests are routed by the address Raft knows the peer by.
	return newSession(m, conn, addr, l, true), nil
}

func (m *Mux) handshake(conn net.Conn, l lane) (string, error) {
	msg := append([]byte(preface), helloFrame(m.local, l)...)
	if _, err := conn.Write(msg); err != nil {
		return "", fmt.Errorf("write hello: %w", err)
	}
	var hdr [frameHeaderLen]byte
	f, err := readFrame(conn, &hdr, maxHello)
	if err != nil {
		return "", fmt.Errorf("read hello: %w", err)
	}
	switch f.kind {
	case kindHello:
		return f.name, nil
	case kindError:
		return "", &RemoteError{Addr: conn.RemoteAddr().String(), Code: f.op, Msg: string(f.payload)}
	}
	return "", fmt.Errorf("%w: frame kind %d instead of hello", ErrProtocol, f.kind)
}

// helloFrame encodes the hello frame: name is the sender's Raft address, op
// the lane.
func helloFrame(addr string, l lane) []byte {
	return encodeFrame(newOutFrame(kindHello, uint8(l), 0, addr, nil))
}

func helloError(err error) []byte {
	return encodeFrame(newOutFrame(kindError, errorCode(err), 0, "", [][]byte{[]byte(err.Error())}))
}

func encodeFrame(f *outFrame) []byte {
	b := append([]byte(nil), f.hdr[:]...)
	b = append(b, f.name...)
	for _, p := range f.parts {
		b = append(b, p...)
	}
	return b
}

// readHello reads the dialer's preface and hello frame.
func readHello(conn net.Conn, maxFrame uint32) (string, lane, error) {
	var pre [len(preface)]byte
	if _, err := io.ReadFull(conn, pre[:]); err != nil {
		return "", 0, fmt.Errorf("read preface: %w", err)
	}
	if string(pre[:]) != preface {
		return "", 0, fmt.Errorf("%w: bad preface %q", ErrProtocol, pre[:])
	}
	var hdr [frameHeaderLen]byte
	f, err := readFrame(conn, &hdr, min(maxFrame, maxHello))
	if err != nil {
		return "", 0, fmt.Errorf("read hello: %w", err)
	}
	if f.kind != kindHello || f.name == "" || f.op >= numLanes {
		return "", 0, fmt.Errorf("%w: bad hello (kind %d, lane %d)", ErrProtocol, f.kind, f.op)
	}
	return f.name, lane(f.op), nil
}

func ctxErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrTimeout
	}
	return ctx.Err()
}
