package raftnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// lane is one of the (at most) two connections a Mux dials to a peer.
type lane uint8

const (
	laneCtl  lane = 0 // heartbeats, votes, TimeoutNow, internal RPC
	laneData lane = 1 // AppendEntries with entries, snapshots
	numLanes      = 2
)

func (l lane) String() string {
	if l == laneData {
		return "data"
	}
	return "ctl"
}

// Buffer sizes per connection. There are only a few connections per peer,
// so the data lane can afford buffers that take a whole batch of entries
// in one syscall.
const (
	ctlBufSize  = 32 << 10
	dataBufSize = 256 << 10
)

func (l lane) bufSize() int {
	if l == laneData {
		return dataBufSize
	}
	return ctlBufSize
}

// result is what a request gets back: a response or error frame, or a
// local error when the connection failed.
type result struct {
	kind    kind
	op      uint8
	payload []byte
	err     error
}

// call is an outstanding request on an outbound session.
type call struct {
	id   uint64
	sent time.Time
	done chan result // buffered; exactly one result is delivered

	// Snapshot flow control: bytes the receiver has granted so far.
	credit     atomic.Int64
	creditWake chan struct{}
}

func (c *call) grant(n int64) {
	c.credit.Add(n)
	select {
	case c.creditWake <- struct{}{}:
	default:
	}
}

// session is one TCP connection between two Muxes. The dialing side sends
// requests and reads responses; the accepting side serves requests. The
// session's reader and writer goroutines are owned by the Mux; close stops
// both.
type session struct {
	m        *Mux
	conn     net.Conn
	peer     string // the peer's advertised Raft address
	lane     lane
	outbound bool
	log      *slog.Logger

	wmu   sync.Mutex
	queue []*outFrame
	wake  chan struct{}

	nextID   atomic.Uint64
	lastRecv atomic.Int64 // unix nanos of the last frame read

	mu      sync.Mutex
	err     error // set once, when the session closes
	calls   map[uint64]*call
	streams map[uint64]*inStream
	cancels map[uint64]context.CancelFunc
	done    chan struct{}
}

func newSession(m *Mux, conn net.Conn, peer string, l lane, outbound bool) *session {
	dir := "in"
	if outbound {
		dir = "out"
	}
	s := &session{
		m:        m,
		conn:     conn,
		peer:     peer,
		lane:     l,
		outbound: outbound,
		log:      m.log.With("peer", peer, "lane", l.String(), "dir", dir),
		wake:     make(chan struct{}, 1),
		calls:    make(map[uint64]*call),
		streams:  make(map[uint64]*inStream),
		cancels:  make(map[uint64]context.CancelFunc),
		done:     make(chan struct{}),
	}
	s.lastRecv.Store(time.Now().UnixNano())
	m.stats.open.Add(1)
	return s
}

// start runs the reader and writer. If the Mux is closing the session is
// closed instead.
func (s *session) start() {
	if !s.m.goFunc(s.writeLoop) {
		s.close(ErrClosed)
		return
	}
	if !s.m.goFunc(s.readLoop) {
		s.close(ErrClosed)
	}
}

// alive reports whether the session still carries traffic.
func (s *session) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// close tears the session down once: it closes the socket, fails every
// outstanding request and inbound stream, and cancels inbound handlers.
func (s *session) close(cause error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = cause
	calls, streams, cancels := s.calls, s.streams, s.cancels
	s.calls, s.streams, s.cancels = nil, nil, nil
	close(s.done)
	s.mu.Unlock()

	_ = s.conn.Close()
	err := s.closedErr()
	for _, c := range calls {
		c.done <- result{err: err}
	}
	for _, st := range streams {
		st.fail(err)
	}
	for _, cancel := range cancels {
		cancel()
	}
	s.m.forget(s)

	switch {
	case errors.Is(cause, io.EOF), errors.Is(cause, ErrClosed), errors.Is(cause, net.ErrClosed), errors.Is(cause, ErrBlocked):
		s.log.Debug("raftnet connection closed", "reason", cause)
	default:
		s.log.Warn("raftnet connection closed", "error", cause)
	}
}

// closedErr is the error requests see once the session is gone.
func (s *session) closedErr() error {
	s.mu.Lock()
	cause := s.err
	s.mu.Unlock()
	if errors.Is(cause, ErrBlocked) || errors.Is(cause, ErrClosed) {
		return cause
	}
	return fmt.Errorf("%w: %w", ErrConnClosed, cause)
}

// send queues a frame for the writer.
func (s *session) send(f *outFrame) error {
	s.wmu.Lock()
	if !s.alive() {
		s.wmu.Unlock()
		return s.closedErr()
	}
	s.queue = append(s.queue, f)
	s.wmu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// writeLoop drains the queue into a buffered writer and flushes once per
// batch, so that frames queued together share syscalls.
func (s *session) writeLoop() {
	w := bufio.NewWriterSize(s.conn, s.lane.bufSize())
	var batch []*outFrame
	var lastFlush time.Time
	for {
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
		s.linger(lastFlush)
		for {
			s.wmu.Lock()
			batch, s.queue = s.queue, batch[:0]
			s.wmu.Unlock()
			if len(batch) == 0 {
				break
			}
			if err := s.writeBatch(w, batch); err != nil {
				s.close(fmt.Errorf("write: %w", err))
				return
			}
		}
		s.m.stats.flushes.Add(1)
		if err := w.Flush(); err != nil {
			s.close(fmt.Errorf("flush: %w", err))
			return
		}
		lastFlush = time.Now()
	}
}

// linger delays the control lane's writer by Config.CoalesceDelay when the
// connection is busy (it flushed within the last few delays), so that the
// heartbeats of many groups share a syscall on both ends. A request on a
// quiet connection goes out at once, and so does a queue holding a large
// frame (an internal RPC carrying data, such as a replica.read answer);
// the data lane never waits.
func (s *session) linger(lastFlush time.Time) {
	d := s.m.cfg.CoalesceDelay
	if s.lane != laneCtl || d <= 0 || time.Since(lastFlush) > 5*d || s.queuedLarge() {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.done:
	}
}

// lingerMaxFrame is the size from which a queued frame is sent without
// lingering.
const lingerMaxFrame = 64 << 10

// queuedLarge reports whether a frame of lingerMaxFrame bytes or more waits
// in the queue.
func (s *session) queuedLarge() bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for _, f := range s.queue {
		if f.size() >= lingerMaxFrame {
			return true
		}
	}
	return false
}

func (s *session) writeBatch(w *bufio.Writer, batch []*outFrame) error {
	timeout := s.m.cfg.RPCTimeout
	_ = s.conn.SetWriteDeadline(time.Now().Add(timeout))
	var n int
	for i, f := range batch {
		size := f.size()
		if size >= 1<<20 {
			// Give every large frame a full timeout of its own.
			_ = s.conn.SetWriteDeadline(time.Now().Add(timeout))
		}
		if err := f.writeTo(w); err != nil {
			return err
		}
		n += size
		batch[i] = nil
	}
	s.m.stats.framesSent.Add(uint64(len(batch)))
	s.m.stats.bytesSent.Add(uint64(n))
	return nil
}

// readLoop reads frames until the connection fails.
func (s *session) readLoop() {
	fr := newFrameReader(s.conn, s.lane.bufSize(), s.m.maxFrame)
	for {
		f, err := fr.next()
		if err != nil {
			s.close(fmt.Errorf("read: %w", err))
			return
		}
		s.lastRecv.Store(time.Now().UnixNano())
		s.m.stats.framesReceived.Add(1)
		s.m.stats.bytesReceived.Add(uint64(frameHeaderLen + len(f.name) + len(f.payload)))
		if s.outbound {
			err = s.dispatchClient(f)
		} else {
			err = s.m.dispatchServer(s, f)
		}
		if err != nil {
			s.close(err)
			return
		}
	}
}

// dispatchClient handles a frame arriving on a connection we dialed.
func (s *session) dispatchClient(f inFrame) error {
	switch f.kind {
	case kindResponse, kindError:
		if c := s.take(f.id); c != nil {
			c.done <- result{kind: f.kind, op: f.op, payload: f.payload}
		}
		return nil
	case kindWindow:
		d := decoder{b: f.payload}
		n := d.uvarint()
		if d.err != nil || n > 1<<40 {
			return fmt.Errorf("window update: %w", ErrProtocol)
		}
		s.mu.Lock()
		c := s.calls[f.id]
		s.mu.Unlock()
		if c != nil && c.creditWake != nil {
			c.grant(int64(n))
		}
		return nil
	}
	return fmt.Errorf("%w: unexpected frame kind %d on a dialed connection", ErrProtocol, f.kind)
}

// request registers a call and queues its request frame.
func (s *session) request(op uint8, name string, parts [][]byte, streaming bool) (*call, error) {
	if n := frameLen(name, parts); n > int(s.m.maxFrame) {
		return nil, fmt.Errorf("request of %d bytes: %w", n, ErrFrameTooLarge)
	}
	c := &call{id: s.nextID.Add(1), sent: time.Now(), done: make(chan result, 1)}
	if streaming {
		c.creditWake = make(chan struct{}, 1)
	}
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return nil, s.closedErr()
	}
	s.calls[c.id] = c
	s.mu.Unlock()
	if err := s.send(newOutFrame(kindRequest, op, c.id, name, parts)); err != nil {
		s.take(c.id)
		return nil, err
	}
	return c, nil
}

// take removes a call; nil means its result was (or is being) delivered.
func (s *session) take(id uint64) *call {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls[id]
	if c != nil {
		delete(s.calls, id)
	}
	return c
}

// wait returns the call's result, or gives up when ctx ends.
func (s *session) wait(ctx context.Context, c *call) (result, error) {
	select {
	case r := <-c.done:
		return r, r.err
	case <-ctx.Done():
	}
	if s.take(c.id) == nil {
		r := <-c.done
		return r, r.err
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return result{}, ErrTimeout
	}
	return result{}, ctx.Err()
}

// errAborted is what waitFor returns when its abort channel closes.
var errAborted = errors.New("raftnet: wait aborted")

// waitFor is wait with a plain timer, cheaper than a context per request.
func (s *session) waitFor(c *call, timeout time.Duration, abort <-chan struct{}) (result, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	var err error
	select {
	case r := <-c.done:
		return r, r.err
	case <-t.C:
		err = ErrTimeout
	case <-abort:
		err = errAborted
	}
	if s.take(c.id) == nil {
		r := <-c.done
		return r, r.err
	}
	return result{}, err
}

// expireIfSilent closes the session when nothing at all has arrived on it
// since the timed-out call was sent: the peer is gone without a FIN, and the
// next request should dial afresh.
func (s *session) expireIfSilent(c *call) {
	if s.lastRecv.Load() < c.sent.UnixNano() && time.Since(c.sent) >= s.m.cfg.RPCTimeout {
		s.close(fmt.Errorf("no traffic for %v: %w", s.m.cfg.RPCTimeout, ErrTimeout))
	}
}

// respond queues a response frame for request id.
func (s *session) respond(id uint64, op uint8, msg any) {
	var e encoder
	if err := encodeMessage(&e, msg); err != nil {
		s.respondErr(id, err)
		return
	}
	_ = s.send(newOutFrame(kindResponse, op, id, "", e.finish()))
}

// respondErr queues an error frame for request id.
func (s *session) respondErr(id uint64, err error) {
	_ = s.send(newOutFrame(kindError, errorCode(err), id, "", [][]byte{[]byte(err.Error())}))
}

// remoteErr turns an error frame into an error.
func (s *session) remoteErr(r result) error {
	return &RemoteError{Addr: s.peer, Code: r.op, Msg: string(r.payload)}
}
