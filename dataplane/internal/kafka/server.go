// Package kafka serves the Kafka wire protocol: one listener that also hands
// HTTP connections to an http.Handler (first-byte sniffing), a connection
// loop that pipelines requests and answers in order, and one handler file per
// API key, named NN_api_name.go in key order.
package kafka

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config wires the server to the rest of the broker.
type Config struct {
	Logger *slog.Logger
	// Broker answers the semantics of each API.
	Broker *Broker
	// HTTP serves connections whose first byte is an ASCII letter.
	HTTP http.Handler
	// MaxRequestBytes is socket.request.max.bytes (default 100 MiB).
	MaxRequestBytes int32
	Registerer      prometheus.Registerer
	Tracer          trace.Tracer
}

// Server accepts connections on one listener.
type Server struct {
	cfg     Config
	log     *slog.Logger
	tracer  trace.Tracer
	metrics *metrics
	httpLn  *chanListener
	httpSrv *http.Server

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewServer builds a server; Serve runs it.
func NewServer(cfg Config) *Server {
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 100 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider().Tracer("")
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "kafka"),
		tracer:  cfg.Tracer,
		metrics: newMetrics(cfg.Registerer),
		conns:   map[net.Conn]struct{}{},
	}
	if cfg.HTTP != nil {
		s.httpLn = newChanListener()
		s.httpSrv = &http.Server{Handler: cfg.HTTP, ReadHeaderTimeout: 10 * time.Second}
	}
	return s
}

// Serve accepts connections until ctx is cancelled, then stops accepting,
// closes idle reads, waits for in-flight requests to be answered and returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.httpSrv != nil {
		s.httpLn.addr = ln.Addr()
		go s.httpSrv.Serve(s.httpLn)
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	connCtx, cancelConns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelConns()
	var err error
	for {
		nc, aerr := ln.Accept()
		if aerr != nil {
			if ctx.Err() == nil && !errors.Is(aerr, net.ErrClosed) {
				err = aerr
			}
			break
		}
		s.track(nc, true)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.track(nc, false)
			s.sniff(connCtx, nc)
		}()
	}
	s.shutdown(cancelConns)
	return err
}

// shutdown ends reads on every connection so that readers stop taking new
// requests, lets queued responses be written, then waits.
func (s *Server) shutdown(cancelConns context.CancelFunc) {
	s.mu.Lock()
	for nc := range s.conns {
		if tc, ok := nc.(interface{ CloseRead() error }); ok {
			tc.CloseRead()
		} else {
			nc.SetReadDeadline(time.Now())
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cancelConns()
		<-done
	}
	if s.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.httpSrv.Shutdown(ctx)
	}
}

func (s *Server) track(nc net.Conn, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.conns[nc] = struct{}{}
	} else {
		delete(s.conns, nc)
	}
}

// sniff peeks at the first byte: an ASCII letter starts an HTTP method, a
// Kafka frame starts with the high byte of its size (0 for any frame under
// 16 MiB, at most 6 for the 100 MiB limit).
func (s *Server) sniff(ctx context.Context, nc net.Conn) {
	br := bufio.NewReaderSize(nc, 64<<10)
	first, err := br.Peek(1)
	if err != nil {
		nc.Close()
		return
	}
	if startsHTTP(first[0]) && s.httpLn != nil {
		s.httpLn.hand(&peekedConn{Conn: nc, r: br})
		return
	}
	s.serveConn(ctx, nc, br)
}

// startsHTTP reports whether a connection's first byte starts an HTTP
// method rather than a Kafka frame's size.
func startsHTTP(b byte) bool { return b >= 'A' && b <= 'Z' }

// peekedConn replays bytes already buffered by the sniffer.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// chanListener feeds sniffed HTTP connections to an http.Server.
type chanListener struct {
	ch     chan net.Conn
	addr   net.Addr
	once   sync.Once
	closed chan struct{}
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) hand(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.closed:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
