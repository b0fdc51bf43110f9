package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// maxInFlight bounds how many requests of one connection may be waiting for
// their response at once; the reader stops reading beyond it.
const maxInFlight = 64

// Errors that close a connection. Protocol outcomes never do.
var (
	errFrameTooLarge   = errors.New("kafka: request frame over socket.request.max.bytes")
	errFrameTooSmall   = errors.New("kafka: request frame shorter than a header")
	errUnknownKey      = errors.New("kafka: unknown api key")
	errUnsupportedVers = errors.New("kafka: unsupported api version")
)

// pending is one request whose response is owed, in request order.
type pending struct {
	corr    int32
	key     int16
	flex    bool // response header carries tagged fields
	started time.Time
	done    chan struct{}
	resp    kmsg.Response
	err     error
	span    trace.Span
}

// conn serves one client connection: a reader that decodes and runs the
// first phase of each request in order, and a writer that sends responses in
// the same order as they become ready.
type conn struct {
	s      *Server
	nc     net.Conn
	log    *slog.Logger
	queue  chan *pending
	client string
	raw    syscall.RawConn // for sendfile; nil when nc has no descriptor
}

func (s *Server) serveConn(ctx context.Context, nc net.Conn, br *bufio.Reader) {
	c := &conn{s: s, nc: nc, log: s.log.With("remote", nc.RemoteAddr().String()), queue: make(chan *pending, maxInFlight)}
	if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	// Once the server gives up waiting, a writer blocked on a client that
	// stopped reading (in write or sendfile) is released by the close.
	stopClose := context.AfterFunc(ctx, func() { nc.Close() })
	defer stopClose()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop(ctx)
	}()
	err := c.readLoop(ctx, br)
	close(c.queue)
	<-writerDone
	nc.Close()
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, context.Canceled):
		c.log.Debug("connection closed")
	default:
		c.log.Info("closing connection", "client_id", c.client, "reason", err)
	}
}

func (c *conn) readLoop(ctx context.Context, br *bufio.Reader) error {
	var sizeBuf [4]byte
	for {
		if _, err := io.ReadFull(br, sizeBuf[:]); err != nil {
			return err
		}
		size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
		if size < 0 || size > c.s.cfg.MaxRequestBytes {
			return fmt.Errorf("%w: %d bytes", errFrameTooLarge, size)
		}
		body := getBody(int(size))
		if _, err := io.ReadFull(br, body); err != nil {
			return fmt.Errorf("read request body: %w", err)
		}
		c.s.metrics.bytesIn.Add(float64(size + 4))
		p, err := c.handle(ctx, body)
		if p != nil && bodyReusable(p.key) {
			putBody(body)
		}
		if err != nil {
			return err
		}
		select {
		case c.queue <- p:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// frame is one decoded request.
type frame struct {
	key, version int16
	corr         int32
	client       string
	req          kmsg.Request
	api          api
}

// decode parses a request frame (without its size prefix). A frame whose
// version is not supported still yields key, version and correlation id, so
// that ApiVersions can answer it (KIP-511).
func decode(body []byte) (frame, error) {
	if len(body) < 8 {
		return frame{}, fmt.Errorf("%w: %d bytes", errFrameTooSmall, len(body))
	}
	f := frame{
		key:     int16(binary.BigEndian.Uint16(body[0:])),
		version: int16(binary.BigEndian.Uint16(body[2:])),
		corr:    int32(binary.BigEndian.Uint32(body[4:])),
	}
	var ok bool
	f.api, ok = registry[f.key]
	f.req = kmsg.RequestForKey(f.key)
	if !ok || f.req == nil {
		return f, fmt.Errorf("%w %d (correlation id %d)", errUnknownKey, f.key, f.corr)
	}
	f.req.SetVersion(f.version)
	if f.version < f.api.min || f.version > f.api.max {
		return f, fmt.Errorf("%w: %s v%d (supported %d-%d)", errUnsupportedVers, kmsg.NameForKey(f.key), f.version, f.api.min, f.api.max)
	}
	rest, client, err := parseHeader(body[8:], f.req.IsFlexible())
	if err != nil {
		return f, fmt.Errorf("%s v%d header: %w", kmsg.NameForKey(f.key), f.version, err)
	}
	f.client = client
	if err := f.req.ReadFrom(rest); err != nil {
		return f, fmt.Errorf("decode %s v%d: %w", kmsg.NameForKey(f.key), f.version, err)
	}
	return f, nil
}

// handle decodes one frame and runs its handler's first phase inline, so
// that appends keep request order; any wait runs on its own goroutine.
func (c *conn) handle(ctx context.Context, body []byte) (*pending, error) {
	f, err := decode(body)
	p := &pending{corr: f.corr, key: f.key, started: time.Now(), done: make(chan struct{})}
	if errors.Is(err, errUnsupportedVers) && f.key == apiVersionsKey {
		// KIP-511: answer with what we support, in the v0 shape.
		p.resp = apiVersionsUnsupported(f.version)
		close(p.done)
		return p, nil
	}
	if err != nil {
		return nil, err
	}
	c.client = f.client
	p.flex = f.req.IsFlexible() && f.key != apiVersionsKey
	name := kmsg.NameForKey(f.key)
	ctx, p.span = c.s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.Int("kafka.api_version", int(f.version)), attribute.String("kafka.client_id", f.client)))
	rc := &Request{Ctx: ctx, Version: f.version, ClientID: f.client, Remote: c.nc.RemoteAddr(), conn: c}
	reply, err := f.api.handle(rc, f.req)
	if err != nil {
		p.span.End()
		return nil, fmt.Errorf("%s v%d: %w", name, f.version, err)
	}
	if reply.Wait == nil {
		p.resp = reply.Resp
		close(p.done)
		return p, nil
	}
	go func() {
		defer close(p.done)
		p.resp, p.err = reply.Wait(ctx)
	}()
	return p, nil
}

// parseHeader reads the client id and, for flexible versions, skips the
// header's tagged fields. It returns the request body that follows.
func parseHeader(b []byte, flexible bool) (rest []byte, clientID string, err error) {
	if len(b) < 2 {
		return nil, "", io.ErrUnexpectedEOF
	}
	n := int16(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n > 0 {
		if len(b) < int(n) {
			return nil, "", io.ErrUnexpectedEOF
		}
		clientID, b = string(b[:n]), b[n:]
	}
	if !flexible {
		return b, clientID, nil
	}
	r := kbin(b)
	tags, ok := r.uvarint()
	for i := uint64(0); ok && i < tags; i++ {
		_, ok = r.uvarint()
		var size uint64
		if ok {
			size, ok = r.uvarint()
		}
		ok = ok && r.skip(size)
	}
	if !ok {
		return nil, "", fmt.Errorf("bad tagged fields: %w", io.ErrUnexpectedEOF)
	}
	return r, clientID, nil
}

// kbin is a tiny reader for the header's tagged-field section.
type kbin []byte

func (r *kbin) uvarint() (uint64, bool) {
	v, n := binary.Uvarint(*r)
	if n <= 0 {
		return 0, false
	}
	*r = (*r)[n:]
	return v, true
}

func (r *kbin) skip(n uint64) bool {
	if uint64(len(*r)) < n {
		return false
	}
	*r = (*r)[n:]
	return true
}

func (c *conn) writeLoop(ctx context.Context) {
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	w := &respWriter{c: c, send: chunkSender{bw: bw, raw: c.raw}, buf: make([]byte, 0, 64<<10)}
	broken := false
	for p := range c.queue {
		select {
		case <-p.done:
		case <-ctx.Done():
			<-p.done // handlers observe ctx and return
		}
		c.finish(p)
		if broken || p.err != nil || p.resp == nil {
			// acks=0 produce owes no response; an error breaks the
			// connection but the queue is still drained.
			if p.err != nil && !broken {
				c.log.Info("request failed", "api", kmsg.NameForKey(p.key), "err", p.err)
				broken = true
				c.nc.Close()
			}
			releaseResponse(p.resp)
			continue
		}
		n, err := w.write(p)
		c.s.metrics.bytesOut.Add(float64(n))
		if err == nil && len(c.queue) == 0 {
			err = bw.Flush()
		}
		if err != nil {
			c.log.Debug("write response", "api", kmsg.NameForKey(p.key), "err", err)
			broken = true
			c.nc.Close()
		}
	}
}

// respWriter encodes responses into the connection's write buffer.
type respWriter struct {
	c       *conn
	send    chunkSender
	buf     []byte
	scratch frameScratch
}

// write sends one response frame (buffered) and returns the bytes written.
func (w *respWriter) write(p *pending) (int, error) {
	defer func() {
		if cap(w.buf) > 1<<20 {
			w.buf = make([]byte, 0, 64<<10)
		}
	}()
	z, ok := p.resp.(*zeroCopyFetch)
	if !ok {
		w.buf = appendResponse(w.buf[:0], p)
		return w.send.bw.Write(w.buf)
	}
	defer z.release()
	frame, cuts, ok := z.appendFrame(w.buf[:0], &w.scratch, p.corr, p.flex)
	w.buf = frame
	if !ok {
		w.c.log.Warn("fetch response does not splice; sending a copy")
		if err := z.materialize(); err != nil {
			return 0, err
		}
		w.buf = appendResponse(w.buf[:0], p)
		return w.send.bw.Write(w.buf)
	}
	if w.send.raw == nil || len(frame)+z.setsSize() < sendfileMin {
		return w.send.writeFrame(frame, cuts, z.sets)
	}
	cork(w.send.raw, true)
	defer cork(w.send.raw, false)
	n, err := w.send.writeFrame(frame, cuts, z.sets)
	if err == nil {
		err = w.send.bw.Flush()
	}
	return n, err
}

// releaseResponse lets go of what an unsent response holds.
func releaseResponse(r kmsg.Response) {
	if z, ok := r.(*zeroCopyFetch); ok {
		z.release()
	}
}

func appendResponse(buf []byte, p *pending) []byte {
	buf = append(buf, 0, 0, 0, 0)
	buf = binary.BigEndian.AppendUint32(buf, uint32(p.corr))
	if p.flex {
		buf = append(buf, 0)
	}
	buf = p.resp.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	return buf
}

func (c *conn) finish(p *pending) {
	name := apiName(p.key)
	c.s.metrics.requests.WithLabelValues(name).Inc()
	c.s.metrics.latency.WithLabelValues(name).Observe(time.Since(p.started).Seconds())
	if p.span != nil {
		if p.err != nil {
			p.span.SetStatus(codes.Error, p.err.Error())
		}
		p.span.End()
	}
}
