package raftnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for zero Config fields.
const (
	DefaultDialTimeout   = 2 * time.Second
	DefaultRPCTimeout    = 5 * time.Second
	DefaultMaxFrameSize  = 256 << 20
	DefaultPipelineDepth = 1
	DefaultCoalesceDelay = 5 * time.Millisecond
)

// Config configures a Mux.
type Config struct {
	// Listener is the Raft-port listener, bound by the caller. The Mux owns
	// it from New on and closes it in Close. If nil, the Mux listens on
	// BindAddr itself.
	Listener net.Listener
	// BindAddr is the address to listen on when Listener is nil; empty
	// means LocalAddr.
	BindAddr string
	// LocalAddr is this node's advertised Raft address "host:port", the
	// raft.ServerAddress of every group on this node. Empty means the
	// listener's address.
	LocalAddr string
	// Logger receives connection lifecycle logs. Nil discards them.
	Logger *slog.Logger
	// DialTimeout bounds connecting to a peer, handshake included.
	DialTimeout time.Duration
	// RPCTimeout bounds every Raft RPC, a stalled socket write and each wait
	// for snapshot data. A group that does not take a request within half
	// of it answers ErrBusy. It is how long a silently dead peer holds up
	// one replication goroutine: a few Raft heartbeat timeouts is plenty.
	RPCTimeout time.Duration
	// MaxFrameSize bounds a single frame; an AppendEntries that encodes to
	// more fails. Keep raft's MaxAppendEntries times the largest entry below it.
	MaxFrameSize int
	// PipelineDepth is how many AppendEntries of one group may be in flight
	// to one follower; 1, the default, disables pipelining.
	//
	// In pipeline mode hashicorp/raft sends a follower at most
	// MaxAppendEntries entries (64) per new entry or commit tick, and never
	// loops until the follower has caught up. With partition groups'
	// commit tick of seconds, a follower back from a restart while writes
	// have stopped (they wait for it: the other follower is down) catches
	// up 64 entries per tick, 14 entries/s, and acks=-1 producers stall.
	// Without a pipeline, raft sends one request at a time but repeats it
	// until the follower holds every entry the leader had when it began,
	// and each request carries every entry waiting by then (up to 64):
	// RF 3 produce measured 11-16% faster so.
	// Depth 2 overlaps sending with the follower's write; deeper pipelines
	// send smaller batches and so cost more follower fsyncs.
	PipelineDepth int
	// CoalesceDelay is how long a busy control connection holds a write so
	// that heartbeats of other groups can join it; it adds at most that much
	// latency to heartbeats, votes and small internal RPC, never to appends
	// or to frames of 64 KiB or more. Zero means DefaultCoalesceDelay (5 ms:
	// a busy connection then flushes at most 200 times a second however
	// many groups heartbeat over it), negative disables it.
	CoalesceDelay time.Duration
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.RPCTimeout <= 0 {
		c.RPCTimeout = DefaultRPCTimeout
	}
	if c.MaxFrameSize <= 0 || c.MaxFrameSize > 1<<31 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.PipelineDepth <= 0 {
		c.PipelineDepth = DefaultPipelineDepth
	}
	if c.CoalesceDelay == 0 {
		c.CoalesceDelay = DefaultCoalesceDelay
	}
}

// Handler serves an internal RPC method. from is the caller's advertised
// Raft address; ctx ends when the caller gives up or the Mux closes, and the
// handler must return then: Close waits for it.
type Handler func(ctx context.Context, from string, req []byte) ([]byte, error)

// Mux carries all Raft groups and internal RPC of one node over one
// listener and a few connections per peer.
//
// Lock order: Mux.mu before peer.mu before session.mu, and pipeline.mu
// before session.mu; session.wmu, inStream.mu and workQueue.mu are leaves.
type Mux struct {
	cfg      Config
	ln       net.Listener
	local    string
	log      *slog.Logger
	maxFrame uint32
	ctx      context.Context // cancelled by Close
	cancel   context.CancelFunc
	stats    counters

	// goMu guards starting goroutines against Close's wg.Wait; it is
	// separate from mu because per-group workers start at frame rate.
	goMu     sync.Mutex
	goClosed bool
	wg       sync.WaitGroup

	mu       sync.RWMutex
	closed   bool
	groups   map[string]*GroupTransport
	handlers map[string]Handler
	peers    map[string]*peer
	inbound  map[*session]struct{}
	pending  map[net.Conn]struct{} // accepted, still in handshake
	blocked  map[string]bool
}

// New starts a Mux serving on cfg.Listener (or cfg.BindAddr).
func New(cfg Config) (*Mux, error) {
	cfg.setDefaults()
	ln := cfg.Listener
	if ln == nil {
		addr := cfg.BindAddr
		if addr == "" {
			addr = cfg.LocalAddr
		}
		if addr == "" {
			return nil, errors.New("raftnet: no listener, bind address or local address")
		}
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
	}
	local := cfg.LocalAddr
	if local == "" {
		local = ln.Addr().String()
	}
	if len(local) > maxNameLen {
		_ = ln.Close()
		return nil, fmt.Errorf("raftnet: local address longer than %d bytes", maxNameLen)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mux{
		cfg:      cfg,
		ln:       ln,
		local:    local,
		log:      cfg.Logger.With("component", "raftnet", "raft_addr", local),
		maxFrame: uint32(cfg.MaxFrameSize),
		ctx:      ctx,
		cancel:   cancel,
		groups:   make(map[string]*GroupTransport),
		handlers: make(map[string]Handler),
		peers:    make(map[string]*peer),
		inbound:  make(map[*session]struct{}),
		pending:  make(map[net.Conn]struct{}),
		blocked:  make(map[string]bool),
	}
	m.goFunc(m.acceptLoop)
	m.log.Info("raft port listening", "listen", ln.Addr().String())
	return m, nil
}

// LocalAddr returns this node's advertised Raft address.
func (m *Mux) LocalAddr() string { return m.local }

// Addr returns the address the listener is bound to.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// goFunc starts f as a goroutine owned by the Mux, unless the Mux is closed.
func (m *Mux) goFunc(f func()) bool {
	m.goMu.Lock()
	defer m.goMu.Unlock()
	if m.goClosed {
		return false
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
	return true
}

// Close stops the listener, every connection, every group transport and
// every goroutine the Mux started, and waits for them.
func (m *Mux) Close() error {
	// From here on nothing new starts: a connection dialed concurrently
	// fails to start and closes itself.
	m.goMu.Lock()
	m.goClosed = true
	m.goMu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	groups := m.groups
	m.groups = map[string]*GroupTransport{}
	var sessions []*session
	for s := range m.inbound {
		sessions = append(sessions, s)
	}
	for _, p := range m.peers {
		sessions = append(sessions, p.sessions()...)
	}
	for c := range m.pending {
		_ = c.Close()
	}
	m.mu.Unlock()

	m.cancel()
	err := m.ln.Close()
	for _, s := range sessions {
		s.close(ErrClosed)
	}
	for _, g := range groups {
		g.shutdown()
	}
	m.wg.Wait()
	m.log.Info("raft port closed")
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close listener: %w", err)
	}
	return nil
}

// acceptLoop accepts connections until the listener closes.
func (m *Mux) acceptLoop() {
	var delay time.Duration
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			if m.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			m.log.Warn("accept raft connection", "error", err, "retry_in", delay)
			select {
			case <-time.After(delay):
				continue
			case <-m.ctx.Done():
				return
			}
		}
		delay = 0
		if !m.track(conn) {
			_ = conn.Close()
			return
		}
		if !m.goFunc(func() { m.serveConn(conn) }) {
			m.untrack(conn)
			_ = conn.Close()
			return
		}
	}
}

func (m *Mux) track(conn net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.pending[conn] = struct{}{}
	return true
}

func (m *Mux) untrack(conn net.Conn) {
	m.mu.Lock()
	delete(m.pending, conn)
	m.mu.Unlock()
}

// serveConn runs the acceptor's side of the handshake and starts a session.
func (m *Mux) serveConn(conn net.Conn) {
	defer m.untrack(conn)
	_ = conn.SetDeadline(time.Now().Add(m.cfg.DialTimeout))
	peerAddr, l, err := readHello(conn, m.maxFrame)
	if err != nil {
		m.log.Warn("raftnet handshake", "remote", conn.RemoteAddr().String(), "error", err)
		_ = conn.Close()
		return
	}
	m.mu.Lock()
	var refusal error
	switch {
	case m.closed:
		refusal = ErrClosed
	case m.blocked[peerAddr]:
		refusal = ErrBlocked
	}
	var s *session
	if refusal == nil {
		s = newSession(m, conn, peerAddr, l, false)
		m.inbound[s] = struct{}{}
	}
	m.mu.Unlock()
	if refusal != nil {
		_, _ = conn.Write(helloError(refusal))
		_ = conn.Close()
		return
	}
	if _, err := conn.Write(helloFrame(m.local, l)); err != nil {
		s.close(fmt.Errorf("write hello: %w", err))
		return
	}
	_ = conn.SetDeadline(time.Time{})
	m.stats.accepted.Add(1)
	s.log.Debug("raftnet connection accepted")
	s.start()
}

// forget drops a closed session from the Mux's tables.
func (m *Mux) forget(s *session) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stats.open.Add(-1)
	if !s.outbound {
		delete(m.inbound, s)
		return
	}
	if p := m.peers[s.peer]; p != nil {
		p.drop(s)
	}
}

// Block cuts all traffic with the peer at addr, in both directions, until
// Unblock: open connections are closed, dials to it fail with ErrBlocked
// and its connections are refused. It simulates a network partition.
func (m *Mux) Block(addr string) {
	m.mu.Lock()
	m.blocked[addr] = true
	var victims []*session
	for s := range m.inbound {
		if s.peer == addr {
			victims = append(victims, s)
		}
	}
	if p := m.peers[addr]; p != nil {
		victims = append(victims, p.sessions()...)
	}
	m.mu.Unlock()
	for _, s := range victims {
		s.close(ErrBlocked)
	}
	m.log.Info("raft link blocked", "peer", addr)
}

// Unblock restores traffic with addr and lets the next request dial at once.
func (m *Mux) Unblock(addr string) {
	m.mu.Lock()
	delete(m.blocked, addr)
	p := m.peers[addr]
	m.mu.Unlock()
	if p != nil {
		p.resetBackoff()
	}
	m.log.Info("raft link unblocked", "peer", addr)
}

func (m *Mux) isBlocked(addr string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.blocked[addr]
}

// Stats are cumulative transport counters.
type Stats struct {
	// OpenConns is the number of connections open now, both directions.
	OpenConns int64
	// DialedConns and AcceptedConns count connections ever established.
	DialedConns, AcceptedConns uint64
	// DialFailures counts failed dials and refused handshakes.
	DialFailures uint64
	// BytesSent and BytesReceived count frame bytes on all connections.
	BytesSent, BytesReceived uint64
	// FramesSent and FramesReceived count frames.
	FramesSent, FramesReceived uint64
	// Flushes counts writer flushes; FramesSent/Flushes is the coalescing.
	Flushes uint64
	// Groups is the number of registered group transports.
	Groups int
}

type counters struct {
	open                         atomic.Int64
	dialed, accepted, dialFailed atomic.Uint64
	bytesSent, bytesReceived     atomic.Uint64
	framesSent, framesReceived   atomic.Uint64
	flushes                      atomic.Uint64
}

// Stats returns a snapshot of the transport counters.
func (m *Mux) Stats() Stats {
	m.mu.RLock()
	groups := len(m.groups)
	m.mu.RUnlock()
	return Stats{
		OpenConns:      m.stats.open.Load(),
		DialedConns:    m.stats.dialed.Load(),
		AcceptedConns:  m.stats.accepted.Load(),
		DialFailures:   m.stats.dialFailed.Load(),
		BytesSent:      m.stats.bytesSent.Load(),
		BytesReceived:  m.stats.bytesReceived.Load(),
		FramesSent:     m.stats.framesSent.Load(),
		FramesReceived: m.stats.framesReceived.Load(),
		Flushes:        m.stats.flushes.Load(),
		Groups:         groups,
	}
}
