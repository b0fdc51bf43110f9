//go:build e2e

package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-stream/chronik/tests/framework"
)

// dropConn cuts the connection right after every third Produce request is
// written, so the broker appends the batch but the client never sees the
// answer and must retry it with the same sequence numbers. It stops after
// maxDrops: a client that resends three batches per new connection would
// otherwise lose the third every time and never finish.
type dropConn struct {
	net.Conn
	produces *atomic.Int64
	drops    *atomic.Int64
}

const maxDrops = 25

func (c *dropConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err == nil && len(b) >= 6 && binary.BigEndian.Uint16(b[4:]) == 0 {
		if c.produces.Add(1)%3 == 0 && c.drops.Add(1) <= maxDrops {
			c.Conn.Close()
		}
	}
	return n, err
}

func TestIdempotentRetriesWriteOnce(t *testing.T) {
	srv := framework.StartStandalone(t)
	ctx := ctxT(t, 90*time.Second)
	adm := kadm.NewClient(client(t, srv.Addr()))
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "idem"); err != nil {
		t.Fatal(err)
	}
	var produces, drops atomic.Int64
	dialer := func(ctx context.Context, network, host string) (net.Conn, error) {
		nc, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, host)
		if err != nil {
			return nil, err
		}
		return &dropConn{Conn: nc, produces: &produces, drops: &drops}, nil
	}
	// A short, fixed retry backoff: a client in lock step with the cuts
	// (see dropConn) otherwise backs off longer after each of them, and 25
	// cuts took from 5 s to more than the 90 s this test allows.
	pr := client(t, srv.Addr(), kgo.Dialer(dialer), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0), kgo.MaxBufferedRecords(50), kgo.RecordRetries(100),
		kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }))
	const n = 600
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := 0; i < n; i++ {
		wg.Add(1)
		pr.Produce(ctx, &kgo.Record{Topic: "idem", Value: []byte(fmt.Sprintf("%05d", i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
				t.Logf("produce: %v", err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d records failed", failed.Load())
	}
	if drops.Load() == 0 {
		t.Fatal("no response was dropped; the test proved nothing")
	}
	t.Logf("%d produce requests, %d answers dropped", produces.Load(), min(drops.Load(), maxDrops))

	ends, err := adm.ListEndOffsets(ctx, "idem")
	if err != nil {
		t.Fatal(err)
	}
	if got := ends["idem"][0].Offset; got != n {
		t.Fatalf("log end offset %d, want %d: retries were written twice", got, n)
	}
	for i, r := range consumeN(t, srv.Addr(), "idem", n) {
		if string(r.Value) != fmt.Sprintf("%05d", i) {
			t.Fatalf("offset %d holds %q: not exactly once, in order", i, r.Value)
		}
	}
}
