package kafka

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// deadliner is a listener whose Accept can be interrupted.
type deadliner interface {
	SetDeadline(time.Time) error
}

// ServeHTTPOnly answers the HTTP side of ln with h until the returned
// stop is called, and holds Kafka connections unanswered (at most
// maxHeld; more are closed). A node runs it while it joins its cluster,
// so that health probes and metric scrapes get answers (not ready yet)
// instead of hanging. stop returns the listener to Serve: it yields the
// held Kafka connections first, so their clients are answered once the
// node is ready, then ln's. ln must support SetDeadline, as
// *net.TCPListener does.
func ServeHTTPOnly(ln net.Listener, h http.Handler) (stop func() net.Listener, err error) {
	dl, ok := ln.(deadliner)
	if !ok {
		return nil, errors.New("kafka: listener cannot interrupt Accept")
	}
	hl := newChanListener()
	hl.addr = ln.Addr()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		srv.Serve(hl)
	}()
	quit := make(chan struct{})
	held := &heldListener{Listener: ln}
	go func() {
		defer wg.Done()
		var sniffers sync.WaitGroup
		defer sniffers.Wait()
		for {
			nc, err := ln.Accept()
			if err != nil {
				select {
				case <-quit:
					return
				default:
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				return
			}
			sniffers.Add(1)
			go func() {
				defer sniffers.Done()
				nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(nc)
				first, err := br.Peek(1)
				if err != nil {
					nc.Close()
					return
				}
				nc.SetReadDeadline(time.Time{})
				if !startsHTTP(first[0]) {
					held.hold(&peekedConn{Conn: nc, r: br})
					return
				}
				hl.hand(&peekedConn{Conn: nc, r: br})
			}()
		}
	}()
	return func() net.Listener {
		close(quit)
		dl.SetDeadline(time.Now())
		srv.Close() // closes hl too, so pending hand-offs give up
		wg.Wait()
		dl.SetDeadline(time.Time{})
		return held
	}, nil
}

// maxHeld bounds the Kafka connections held before the node is ready.
const maxHeld = 1024

// heldListener yields the connections held while the node was joining,
// then those of the listener it wraps.
type heldListener struct {
	net.Listener
	mu   sync.Mutex
	held []net.Conn
}

func (l *heldListener) hold(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.held) >= maxHeld {
		c.Close()
		return
	}
	l.held = append(l.held, c)
}

// Accept implements net.Listener.
func (l *heldListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.held) > 0 {
		c := l.held[0]
		l.held = l.held[1:]
		l.mu.Unlock()
		return c, nil
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// Close implements net.Listener; it closes the held connections too.
func (l *heldListener) Close() error {
	l.mu.Lock()
	for _, c := range l.held {
		c.Close()
	}
	l.held = nil
	l.mu.Unlock()
	return l.Listener.Close()
}
