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

// ServeHTTPOnly answers the HTTP side of ln with h and closes Kafka
// connections at once, until the returned stop is called; ln stays open
// for Serve. A node runs it while it joins its cluster, so that health
// probes and metric scrapes get answers (not ready yet) instead of
// hanging, while Kafka clients see a closed connection and try another
// broker. ln must support SetDeadline, as *net.TCPListener does.
func ServeHTTPOnly(ln net.Listener, h http.Handler) (stop func(), err error) {
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
				if err != nil || first[0] < 'A' || first[0] > 'Z' {
					nc.Close()
					return
				}
				nc.SetReadDeadline(time.Time{})
				hl.hand(&peekedConn{Conn: nc, r: br})
			}()
		}
	}()
	return func() {
		close(quit)
		dl.SetDeadline(time.Now())
		srv.Close() // closes hl too, so pending hand-offs give up
		wg.Wait()
		dl.SetDeadline(time.Time{})
	}, nil
}
