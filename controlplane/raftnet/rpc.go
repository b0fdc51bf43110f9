package raftnet

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Handle registers h as the server of an internal RPC method, replacing any
// earlier handler. Each request runs in its own goroutine owned by the Mux.
func (m *Mux) Handle(method string, h Handler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h == nil {
		delete(m.handlers, method)
		return
	}
	m.handlers[method] = h
}

// Call invokes method on the peer at addr (its Raft address) and returns the
// response. The peer's handler sees ctx's deadline and is cancelled when ctx
// ends. Errors from the handler come back as *RemoteError; a method the peer
// does not serve matches ErrUnknownMethod.
func (m *Mux) Call(ctx context.Context, addr, method string, req []byte) ([]byte, error) {
	if len(method) > maxNameLen {
		return nil, fmt.Errorf("call %s: method name longer than %d bytes", method, maxNameLen)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(m.ctx, cancel)
	defer stop()

	s, err := m.session(ctx, addr, laneCtl)
	if err != nil {
		return nil, fmt.Errorf("call %s on %s: %w", method, addr, m.callErr(err))
	}
	var e encoder
	var timeoutMs uint64
	if dl, ok := ctx.Deadline(); ok {
		timeoutMs = uint64(max(time.Until(dl).Milliseconds(), 1))
	}
	e.uvarint(timeoutMs)
	e.cut()
	parts := e.finish()
	if len(req) > 0 {
		parts = append(parts, req)
	}
	c, err := s.request(opCall, method, parts, false)
	if err != nil {
		return nil, fmt.Errorf("call %s on %s: %w", method, addr, m.callErr(err))
	}
	r, err := s.wait(ctx, c)
	if err != nil {
		if ctx.Err() != nil {
			_ = s.send(newOutFrame(kindCancel, 0, c.id, "", nil))
		}
		return nil, fmt.Errorf("call %s on %s: %w", method, addr, m.callErr(err))
	}
	switch r.kind {
	case kindResponse:
		return r.payload, nil
	case kindError:
		return nil, fmt.Errorf("call %s: %w", method, s.remoteErr(r))
	}
	return nil, fmt.Errorf("call %s on %s: %w: result of kind %d", method, addr, ErrProtocol, r.kind)
}

func (m *Mux) callErr(err error) error {
	if m.ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return ErrClosed
	}
	return err
}

// serveCall starts the handler of an internal RPC request.
func (m *Mux) serveCall(s *session, f inFrame) error {
	d := decoder{b: f.payload}
	timeoutMs := d.uvarint()
	if d.err != nil {
		return fmt.Errorf("call %s: %w", f.name, d.err)
	}
	req := d.b
	m.mu.RLock()
	h := m.handlers[f.name]
	m.mu.RUnlock()
	if h == nil {
		s.respondErr(f.id, fmt.Errorf("%w %q on %s", ErrUnknownMethod, f.name, m.local))
		return nil
	}
	ctx, cancel := m.handlerContext(timeoutMs)
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		cancel()
		return nil
	}
	s.cancels[f.id] = cancel
	s.mu.Unlock()
	run := func() {
		defer func() {
			s.mu.Lock()
			if s.cancels != nil {
				delete(s.cancels, f.id)
			}
			s.mu.Unlock()
			cancel()
		}()
		resp, err := h(ctx, s.peer, req)
		if err != nil {
			s.respondErr(f.id, err)
			return
		}
		_ = s.send(newOutFrame(kindResponse, opCall, f.id, "", [][]byte{resp}))
	}
	if !m.goFunc(run) {
		cancel()
	}
	return nil
}

// handlerContext is the context of one served call: it carries the caller's
// remaining time, if any, and ends when the Mux closes.
func (m *Mux) handlerContext(timeoutMs uint64) (context.Context, context.CancelFunc) {
	if timeoutMs == 0 {
		return context.WithCancel(m.ctx)
	}
	return context.WithTimeout(m.ctx, time.Duration(min(timeoutMs, 1<<40))*time.Millisecond)
}
