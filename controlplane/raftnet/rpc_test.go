package raftnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

func TestCallRoundTrips(t *testing.T) {
	checkGoroutines(t)
	srv := newTestMux(t, "127.0.0.1:0")
	cli := newTestMux(t, "127.0.0.1:0")
	srv.Handle("echo", func(_ context.Context, from string, req []byte) ([]byte, error) {
		return append([]byte(from+"|"), req...), nil
	})
	ctx := context.Background()

	got, err := cli.Call(ctx, srv.LocalAddr(), "echo", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if want := cli.LocalAddr() + "|hello"; string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got, err := cli.Call(ctx, srv.LocalAddr(), "echo", nil); err != nil || string(got) != cli.LocalAddr()+"|" {
		t.Fatalf("empty request: %q %v", got, err)
	}

	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	got, err = cli.Call(ctx, srv.LocalAddr(), "echo", big)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[len(cli.LocalAddr())+1:], big) {
		t.Fatal("large payload corrupted")
	}

	// Many concurrent calls share the connection and get their own answers.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := fmt.Appendf(nil, "req-%d", i)
			got, err := cli.Call(ctx, srv.LocalAddr(), "echo", req)
			if err == nil && !bytes.HasSuffix(got, req) {
				err = fmt.Errorf("call %d got %q", i, got)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := cli.Stats(); st.DialedConns != 1 || st.OpenConns != 1 {
		t.Fatalf("calls used %d dialed / %d open connections, want 1/1", st.DialedConns, st.OpenConns)
	}
	// The mux can call itself through its own listener.
	if _, err := srv.Call(ctx, srv.LocalAddr(), "echo", []byte("self")); err != nil {
		t.Fatalf("call to self: %v", err)
	}
}

func TestCallErrors(t *testing.T) {
	checkGoroutines(t)
	srv := newTestMux(t, "127.0.0.1:0")
	cli := newTestMux(t, "127.0.0.1:0")
	ctx := context.Background()
	srv.Handle("fail", func(context.Context, string, []byte) ([]byte, error) {
		return nil, errors.New("broker 3 is fenced")
	})

	_, err := cli.Call(ctx, srv.LocalAddr(), "fail", nil)
	var re *RemoteError
	if !errors.As(err, &re) || re.Msg != "broker 3 is fenced" || re.Addr != srv.LocalAddr() {
		t.Fatalf("handler error came back as %v", err)
	}

	_, err = cli.Call(ctx, srv.LocalAddr(), "nope", nil)
	if !errors.Is(err, ErrUnknownMethod) {
		t.Fatalf("unknown method: %v", err)
	}

	// Unregistering a handler makes the method unknown again.
	srv.Handle("fail", nil)
	if _, err = cli.Call(ctx, srv.LocalAddr(), "fail", nil); !errors.Is(err, ErrUnknownMethod) {
		t.Fatalf("removed method: %v", err)
	}
}

func TestCallTimeoutCancelsHandler(t *testing.T) {
	checkGoroutines(t)
	srv := newTestMux(t, "127.0.0.1:0")
	cli := newTestMux(t, "127.0.0.1:0")
	handlerDone := make(chan error, 2)
	srv.Handle("block", func(ctx context.Context, _ string, _ []byte) ([]byte, error) {
		<-ctx.Done()
		handlerDone <- ctx.Err()
		return nil, ctx.Err()
	})

	// The deadline travels with the request.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := cli.Call(ctx, srv.LocalAddr(), "block", nil)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("timed out call took %v", d)
	}
	select {
	case err := <-handlerDone:
		t.Logf("handler ended with %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("handler context not cancelled after the caller's deadline")
	}

	// Cancellation without a deadline reaches the handler as a cancel frame.
	ctx2, cancel2 := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := cli.Call(ctx2, srv.LocalAddr(), "block", nil)
		res <- err
	}()
	eventually(t, 5*time.Second, func() error {
		srv.mu.RLock()
		defer srv.mu.RUnlock()
		for s := range srv.inbound {
			s.mu.Lock()
			n := len(s.cancels)
			s.mu.Unlock()
			if n > 0 {
				return nil
			}
		}
		return errors.New("handler not running yet")
	})
	cancel2()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call returned %v", err)
	}
	select {
	case err := <-handlerDone:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("handler saw %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancel frame did not reach the handler")
	}
}

func TestCallToDeadPeerFailsFastAndReconnects(t *testing.T) {
	checkGoroutines(t)
	cli := newTestMux(t, "127.0.0.1:0")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	ctx := context.Background()
	start := time.Now()
	_, err = cli.Call(ctx, addr, "echo", nil)
	if err == nil {
		t.Fatal("call to a closed port succeeded")
	}
	t.Logf("first call: %v", err)
	_, err = cli.Call(ctx, addr, "echo", nil)
	if !errors.Is(err, ErrPeerUnreachable) {
		t.Fatalf("second call during backoff: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("failing calls took %v", d)
	}

	// The peer comes up on that address: calls succeed once the backoff
	// has passed, without anyone resetting it.
	srv := newTestMux(t, addr)
	srv.Handle("echo", func(_ context.Context, _ string, req []byte) ([]byte, error) { return req, nil })
	eventually(t, 5*time.Second, func() error {
		_, err := cli.Call(ctx, addr, "echo", nil)
		return err
	})

	// The peer dies: the open connection fails at once, not after a timeout.
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	_, err = cli.Call(ctx, addr, "echo", nil)
	if err == nil {
		t.Fatal("call to a closed mux succeeded")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("call to a dead peer took %v", d)
	}

	// It restarts: the client reconnects.
	srv2 := newTestMux(t, addr)
	srv2.Handle("echo", func(_ context.Context, _ string, req []byte) ([]byte, error) { return req, nil })
	eventually(t, 5*time.Second, func() error {
		_, err := cli.Call(ctx, addr, "echo", []byte("again"))
		return err
	})
	if cli.Stats().DialedConns < 2 {
		t.Fatalf("expected a redial, stats %+v", cli.Stats())
	}
}

func TestBlockCutsBothDirections(t *testing.T) {
	checkGoroutines(t)
	a := newTestMux(t, "127.0.0.1:0")
	b := newTestMux(t, "127.0.0.1:0")
	echo := func(_ context.Context, _ string, req []byte) ([]byte, error) { return req, nil }
	a.Handle("echo", echo)
	b.Handle("echo", echo)
	ctx := context.Background()
	for _, c := range [][2]*Mux{{a, b}, {b, a}} {
		if _, err := c[0].Call(ctx, c[1].LocalAddr(), "echo", nil); err != nil {
			t.Fatal(err)
		}
	}

	a.Block(b.LocalAddr())
	if _, err := a.Call(ctx, b.LocalAddr(), "echo", nil); !errors.Is(err, ErrBlocked) {
		t.Fatalf("a->b while blocked: %v", err)
	}
	// b's old connection was closed by a; its redial is refused.
	eventually(t, 5*time.Second, func() error {
		_, err := b.Call(ctx, a.LocalAddr(), "echo", nil)
		if err == nil {
			return errors.New("b->a still works")
		}
		return nil
	})

	a.Unblock(b.LocalAddr())
	eventually(t, 5*time.Second, func() error {
		if _, err := a.Call(ctx, b.LocalAddr(), "echo", nil); err != nil {
			return err
		}
		_, err := b.Call(ctx, a.LocalAddr(), "echo", nil)
		return err
	})
}

func TestCallAfterClose(t *testing.T) {
	checkGoroutines(t)
	srv := newTestMux(t, "127.0.0.1:0")
	cli := newTestMux(t, "127.0.0.1:0")
	srv.Handle("echo", func(_ context.Context, _ string, req []byte) ([]byte, error) { return req, nil })
	if _, err := cli.Call(context.Background(), srv.LocalAddr(), "echo", nil); err != nil {
		t.Fatal(err)
	}
	if err := cli.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Call(context.Background(), srv.LocalAddr(), "echo", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after close: %v", err)
	}
	if err := cli.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// A busy control connection holds small frames for CoalesceDelay so that
// heartbeats share a syscall, but never a frame carrying data.
func TestCoalesceDelayHoldsOnlySmallFrames(t *testing.T) {
	const delay = time.Second
	opt := func(c *Config) { c.CoalesceDelay, c.RPCTimeout = delay, 10*time.Second }
	srv := newTestMux(t, "127.0.0.1:0", opt)
	cli := newTestMux(t, "127.0.0.1:0", opt)
	srv.Handle("echo", func(_ context.Context, _ string, req []byte) ([]byte, error) { return req, nil })
	ctx := context.Background()
	call := func(req []byte) time.Duration {
		t.Helper()
		start := time.Now()
		got, err := cli.Call(ctx, srv.LocalAddr(), "echo", req)
		if err != nil || !bytes.Equal(got, req) {
			t.Fatalf("call of %d bytes: %d bytes back, %v", len(req), len(got), err)
		}
		return time.Since(start)
	}
	call([]byte("quiet")) // the connection was quiet: no wait
	if took := call([]byte("busy")); took < delay {
		t.Fatalf("a small request on a busy connection took %v, want it held %v", took, delay)
	}
	if took := call(bytes.Repeat([]byte("x"), lingerMaxFrame)); took >= delay/2 {
		t.Fatalf("a %d-byte request on a busy connection took %v; large frames must not wait", lingerMaxFrame, took)
	}
}
