package raftnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// maxQueued bounds the requests of one group waiting for its consumer; more
// are refused with ErrBusy instead of piling up behind a stuck group.
const maxQueued = 256

// GroupTransport is the raft.Transport of one Raft group on a Mux. It also
// implements raft.WithClose and raft.WithPreVote.
type GroupTransport struct {
	m       *Mux
	name    string
	log     *slog.Logger
	consume chan raft.RPC
	hb      atomic.Pointer[func(raft.RPC)]
	stored  atomic.Pointer[func(Stored)]
	ctx     context.Context // ends when the transport closes
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
	// hbMu is held (read) while Raft's heartbeat handler runs; Close takes
	// it, so that once Raft's Shutdown has closed the transport no
	// heartbeat is still touching the stores the owner is about to close.
	hbMu sync.RWMutex

	normal workQueue // everything but heartbeats, in arrival order
	fast   workQueue // heartbeats, when a heartbeat handler is set
}

var (
	_ raft.Transport   = (*GroupTransport)(nil)
	_ raft.WithClose   = (*GroupTransport)(nil)
	_ raft.WithPreVote = (*GroupTransport)(nil)
)

// inbound is a request received for a group.
type inbound struct {
	s      *session
	id     uint64
	op     uint8
	cmd    any
	stream *inStream // InstallSnapshot only
	at     time.Time
}

// workQueue feeds one group's requests to a goroutine that exists only
// while there is work, so idle groups cost no goroutines.
type workQueue struct {
	mu      sync.Mutex
	items   []inbound
	running bool
}

// Transport returns the transport of group, creating it on first use. A
// transport stays valid until it is closed (Raft closes it on Shutdown) or
// removed; after that Transport returns a fresh one.
func (m *Mux) Transport(group string) *GroupTransport {
	m.mu.Lock()
	defer m.mu.Unlock()
	if g := m.groups[group]; g != nil {
		return g
	}
	ctx, cancel := context.WithCancel(m.ctx)
	g := &GroupTransport{
		m:       m,
		name:    group,
		log:     m.log.With("raft_group", group),
		consume: make(chan raft.RPC),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	if m.closed || len(group) > maxNameLen {
		if !m.closed {
			m.log.Error("raft group name too long for the wire", "raft_group", group, "max", maxNameLen)
		}
		g.shutdown()
		return g
	}
	m.groups[group] = g
	return g
}

// RemoveGroup closes the transport of group. Requests for it are answered
// with ErrUnknownGroup from then on.
func (m *Mux) RemoveGroup(group string) {
	m.mu.Lock()
	g := m.groups[group]
	delete(m.groups, group)
	m.mu.Unlock()
	if g != nil {
		g.shutdown()
	}
}

func (m *Mux) group(name string) *GroupTransport {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.groups[name]
}

// Close implements raft.WithClose: it unregisters the group.
func (g *GroupTransport) Close() error {
	g.m.mu.Lock()
	if g.m.groups[g.name] == g {
		delete(g.m.groups, g.name)
	}
	g.m.mu.Unlock()
	g.shutdown()
	return nil
}

func (g *GroupTransport) shutdown() {
	g.once.Do(func() {
		close(g.done)
		g.cancel()
	})
	g.hbMu.Lock() // wait for a heartbeat in Raft's hands
	g.hbMu.Unlock()
}

// Group returns the group name.
func (g *GroupTransport) Group() string { return g.name }

// Consumer implements raft.Transport.
func (g *GroupTransport) Consumer() <-chan raft.RPC { return g.consume }

// LocalAddr implements raft.Transport.
func (g *GroupTransport) LocalAddr() raft.ServerAddress { return raft.ServerAddress(g.m.local) }

// EncodePeer implements raft.Transport.
func (g *GroupTransport) EncodePeer(_ raft.ServerID, addr raft.ServerAddress) []byte {
	return []byte(addr)
}

// DecodePeer implements raft.Transport.
func (g *GroupTransport) DecodePeer(b []byte) raft.ServerAddress { return raft.ServerAddress(b) }

// SetHeartbeatHandler implements raft.Transport. Heartbeats bypass the
// group's request queue and go straight to cb.
func (g *GroupTransport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	if cb == nil {
		g.hb.Store(nil)
		return
	}
	g.hb.Store(&cb)
}

// Stored says that a follower has stored a leader's entries up to Last.
type Stored struct {
	ID   raft.ServerID // the follower
	Term uint64        // the leader's term
	Last uint64        // the index of the last entry the request carried
}

// OnStored sets fn, called (on Raft's replication goroutines) each time a
// follower answers an AppendEntries that carried entries with success.
func (g *GroupTransport) OnStored(fn func(Stored)) {
	if fn == nil {
		g.stored.Store(nil)
		return
	}
	g.stored.Store(&fn)
}

// noteStored calls the OnStored hook for a completed AppendEntries.
func (g *GroupTransport) noteStored(id raft.ServerID, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) {
	fn := g.stored.Load()
	if fn == nil || !resp.Success || len(args.Entries) == 0 {
		return
	}
	(*fn)(Stored{ID: id, Term: args.Term, Last: args.Entries[len(args.Entries)-1].Index})
}

// AppendEntries implements raft.Transport. Heartbeats travel on the control
// connection, entries on the data connection.
func (g *GroupTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	l := laneData
	if isHeartbeat(args) {
		l = laneCtl
	}
	if err := g.roundTrip(l, target, opAppendEntries, args, resp); err != nil {
		return err
	}
	g.noteStored(id, args, resp)
	return nil
}

// RequestVote implements raft.Transport.
func (g *GroupTransport) RequestVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return g.roundTrip(laneCtl, target, opRequestVote, args, resp)
}

// RequestPreVote implements raft.WithPreVote.
func (g *GroupTransport) RequestPreVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return g.roundTrip(laneCtl, target, opRequestPreVote, args, resp)
}

// TimeoutNow implements raft.Transport.
func (g *GroupTransport) TimeoutNow(_ raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return g.roundTrip(laneCtl, target, opTimeoutNow, args, resp)
}

var opNames = [...]string{
	opAppendEntries:   "append entries",
	opRequestVote:     "request vote",
	opRequestPreVote:  "request pre-vote",
	opInstallSnapshot: "install snapshot",
	opTimeoutNow:      "timeout now",
	opCall:            "call",
}

func opName(op uint8) string {
	if int(op) < len(opNames) && opNames[op] != "" {
		return opNames[op]
	}
	return fmt.Sprintf("op %d", op)
}

// roundTrip sends one request and decodes its response into resp.
func (g *GroupTransport) roundTrip(l lane, target raft.ServerAddress, op uint8, args, resp any) error {
	s, c, err := g.send(g.ctx, l, target, op, args, false)
	if err != nil {
		return err
	}
	r, err := s.waitFor(c, g.m.cfg.RPCTimeout, g.done)
	if err != nil {
		if errors.Is(err, ErrTimeout) {
			s.expireIfSilent(c)
		}
		if errors.Is(err, errAborted) {
			err = ErrTransportClosed
		}
		return g.wrap(op, target, err)
	}
	return g.wrap(op, target, s.decode(r, resp))
}

// send encodes args and queues them as a request on lane l to target.
func (g *GroupTransport) send(ctx context.Context, l lane, target raft.ServerAddress, op uint8, args any, streaming bool) (*session, *call, error) {
	if g.ctx.Err() != nil {
		return nil, nil, g.wrap(op, target, ErrTransportClosed)
	}
	s, err := g.m.awaitSession(ctx, string(target), l, g.m.cfg.RPCTimeout)
	if err != nil {
		return nil, nil, g.wrap(op, target, err)
	}
	var e encoder
	if err := encodeMessage(&e, args); err != nil {
		return nil, nil, g.wrap(op, target, err)
	}
	c, err := s.request(op, g.name, e.finish(), streaming)
	if err != nil {
		return nil, nil, g.wrap(op, target, err)
	}
	return s, c, nil
}

func (g *GroupTransport) wrap(op uint8, target raft.ServerAddress, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) && g.ctx.Err() != nil {
		err = ErrTransportClosed
	}
	return fmt.Errorf("%s to %s: %w", opName(op), target, err)
}

// decode turns a result into resp or an error.
func (s *session) decode(r result, resp any) error {
	switch r.kind {
	case kindError:
		return s.remoteErr(r)
	case kindResponse:
		return decodeResponse(r.op, r.payload, resp)
	}
	return fmt.Errorf("%w: result of kind %d", ErrProtocol, r.kind)
}

// dispatchServer handles a frame arriving on a connection a peer dialed.
func (m *Mux) dispatchServer(s *session, f inFrame) error {
	switch f.kind {
	case kindRequest:
		if f.op == opCall {
			return m.serveCall(s, f)
		}
		return m.serveRaft(s, f)
	case kindChunk:
		s.mu.Lock()
		st := s.streams[f.id]
		s.mu.Unlock()
		if st == nil {
			return nil // the request was refused or already answered
		}
		return st.push(f)
	case kindCancel:
		s.mu.Lock()
		cancel := s.cancels[f.id]
		s.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		return nil
	}
	return fmt.Errorf("%w: unexpected frame kind %d on an accepted connection", ErrProtocol, f.kind)
}

// serveRaft decodes a Raft request and queues it for its group. It never
// blocks: the connection's reader serves every group.
func (m *Mux) serveRaft(s *session, f inFrame) error {
	cmd, err := decodeRequest(f.op, f.payload)
	if err != nil {
		return err
	}
	g := m.group(f.name)
	if g == nil {
		s.respondErr(f.id, fmt.Errorf("%w %q on %s", ErrUnknownGroup, f.name, m.local))
		return nil
	}
	in := inbound{s: s, id: f.id, op: f.op, cmd: cmd, at: time.Now()}
	if _, ok := cmd.(*raft.InstallSnapshotRequest); ok {
		in.stream = newInStream(s, f.id)
		if !s.addStream(in.stream) {
			return nil // the session is closing
		}
	}
	if req, ok := cmd.(*raft.AppendEntriesRequest); ok && isHeartbeat(req) && g.hb.Load() != nil {
		g.enqueue(&g.fast, in, true)
	} else {
		g.enqueue(&g.normal, in, false)
	}
	return nil
}

// enqueue adds a request to q and starts q's worker if it is idle.
func (g *GroupTransport) enqueue(q *workQueue, in inbound, fast bool) {
	q.mu.Lock()
	if len(q.items) >= maxQueued {
		q.mu.Unlock()
		g.refuse(in, fmt.Errorf("%w: %d requests queued for %q", ErrBusy, maxQueued, g.name))
		return
	}
	q.items = append(q.items, in)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start && !g.m.goFunc(func() { g.drain(q, fast) }) {
		q.mu.Lock()
		items := q.items
		q.items, q.running = nil, false
		q.mu.Unlock()
		for _, in := range items {
			g.refuse(in, ErrClosed)
		}
	}
}

// drain serves q until it is empty, then exits.
func (g *GroupTransport) drain(q *workQueue, fast bool) {
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			q.items, q.running = nil, false
			q.mu.Unlock()
			return
		}
		in := q.items[0]
		q.items[0] = inbound{}
		q.items = q.items[1:]
		q.mu.Unlock()
		if fast {
			g.serveHeartbeat(in)
		} else {
			g.serve(in)
		}
	}
}

func (g *GroupTransport) refuse(in inbound, err error) {
	if in.stream != nil {
		in.s.dropStream(in.id)
	}
	in.s.respondErr(in.id, err)
}

// serve hands a request to Raft's consumer and sends back its response.
func (g *GroupTransport) serve(in inbound) {
	if in.stream != nil {
		defer in.s.dropStream(in.id)
	}
	// Refuse at half the RPC timeout, so that the sender, which waits a full
	// timeout, learns that the group is busy rather than timing out.
	timeout := g.m.cfg.RPCTimeout / 2
	left := timeout - time.Since(in.at)
	if left <= 0 {
		g.refuse(in, fmt.Errorf("%w: request for %q waited %v", ErrBusy, g.name, timeout))
		return
	}
	respCh := make(chan raft.RPCResponse, 1)
	rpc := raft.RPC{Command: in.cmd, RespChan: respCh}
	if in.stream != nil {
		rpc.Reader = in.stream
	}
	timer := time.NewTimer(left)
	defer timer.Stop()
	select {
	case g.consume <- rpc:
	case <-timer.C:
		g.refuse(in, fmt.Errorf("%w: %q did not take the request within %v", ErrBusy, g.name, timeout))
		return
	case <-g.done:
		g.refuse(in, fmt.Errorf("group %q: %w", g.name, ErrTransportClosed))
		return
	case <-in.s.done:
		return
	}
	// A snapshot may take long to restore; everything else is answered
	// promptly by a live Raft.
	wait := g.m.cfg.RPCTimeout
	if in.stream != nil {
		wait = 0
	}
	g.await(in, respCh, wait)
}

// serveHeartbeat runs the heartbeat fast path.
func (g *GroupTransport) serveHeartbeat(in inbound) {
	fn := g.hb.Load()
	if fn == nil {
		g.enqueue(&g.normal, in, false)
		return
	}
	g.hbMu.RLock()
	select {
	case <-g.done:
		g.hbMu.RUnlock()
		g.refuse(in, fmt.Errorf("group %q: %w", g.name, ErrTransportClosed))
		return
	default:
	}
	respCh := make(chan raft.RPCResponse, 1)
	(*fn)(raft.RPC{Command: in.cmd, RespChan: respCh})
	g.hbMu.RUnlock()
	g.await(in, respCh, g.m.cfg.RPCTimeout)
}

// await waits for Raft's response to in (at most wait, if not zero) and
// sends it to the peer.
func (g *GroupTransport) await(in inbound, respCh <-chan raft.RPCResponse, wait time.Duration) {
	var expired <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		expired = t.C
	}
	select {
	case r := <-respCh:
		switch {
		case r.Error != nil:
			in.s.respondErr(in.id, r.Error)
		case r.Response == nil:
			in.s.respondErr(in.id, fmt.Errorf("group %q gave no response", g.name))
		default:
			in.s.respond(in.id, in.op, r.Response)
		}
	case <-expired:
		in.s.respondErr(in.id, fmt.Errorf("%w: %q did not answer within %v", ErrTimeout, g.name, wait))
	case <-g.done:
		in.s.respondErr(in.id, fmt.Errorf("group %q: %w", g.name, ErrTransportClosed))
	case <-in.s.done:
	}
}
