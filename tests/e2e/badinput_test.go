//go:build e2e

package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-stream/chronik/tests/framework"
)

// TestBadFramesHarmNoOne sends malformed, oversized and unknown requests on
// raw connections while a real client keeps producing and consuming: each
// bad connection is closed, the good client never notices, no data is lost.
func TestBadFramesHarmNoOne(t *testing.T) {
	srv := framework.StartStandalone(t)
	ctx := ctxT(t, 60*time.Second)
	pr := client(t, srv.Addr(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.AllowAutoTopicCreation())
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			if err := pr.ProduceSync(ctx, &kgo.Record{Topic: "bad-input", Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
		}
	}
	produce(0, 50)

	frame := func(key, version int16, body []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(8+2+len(body)))
		b = binary.BigEndian.AppendUint16(b, uint16(key))
		b = binary.BigEndian.AppendUint16(b, uint16(version))
		b = binary.BigEndian.AppendUint32(b, 1)
		b = append(b, 0xff, 0xff) // null client id
		return append(b, body...)
	}
	cases := map[string][]byte{
		"oversized frame":   {0x7f, 0xff, 0xff, 0xff},
		"negative size":     {0xff, 0xff, 0xff, 0xf0},
		"unknown api key":   frame(9999, 0, nil),
		"unsupported vers":  frame(3, 99, nil),
		"truncated produce": frame(0, 9, []byte{0x01, 0x02}),
		"short array":       frame(3, 4, []byte{0, 0, 0, 5, 0, 3}),
	}
	for name, b := range cases {
		nc, err := net.DialTimeout("tcp", srv.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write(b); err != nil {
			t.Fatalf("%s: write: %v", name, err)
		}
		// The server answers nothing for these and closes the connection.
		n, err := io.Copy(io.Discard, nc)
		if err != nil || n != 0 {
			t.Fatalf("%s: want a closed connection with no answer, got %d bytes, err %v", name, n, err)
		}
		nc.Close()
	}

	// An unsupported ApiVersions version gets UNSUPPORTED_VERSION and the
	// supported ranges (KIP-511), not a closed connection.
	nc, err := net.DialTimeout("tcp", srv.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	nc.Write(frame(18, 99, nil))
	var hdr [10]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		t.Fatalf("ApiVersions v99: %v", err)
	}
	if code := int16(binary.BigEndian.Uint16(hdr[8:])); code != 35 {
		t.Fatalf("ApiVersions v99 error code %d, want 35 (UNSUPPORTED_VERSION)", code)
	}

	produce(50, 100)
	recs := consumeN(t, srv.Addr(), "bad-input", 100)
	for i, r := range recs {
		if string(r.Value) != fmt.Sprint(i) {
			t.Fatalf("record %d = %q", i, r.Value)
		}
	}
}

// TestNoClientWritesToInternalTopics: __consumer_offsets belongs to the
// group coordinator; a client's produce to it is refused.
func TestNoClientWritesToInternalTopics(t *testing.T) {
	srv := framework.StartStandalone(t)
	cl := client(t, srv.Addr(), kgo.DisableIdempotentWrite(), kgo.RecordRetries(0))
	err := cl.ProduceSync(ctxT(t, 30*time.Second), &kgo.Record{Topic: "__consumer_offsets", Value: []byte("forged")}).FirstErr()
	if !errors.Is(err, kerr.InvalidTopicException) {
		t.Fatalf("produce to __consumer_offsets: %v, want INVALID_TOPIC_EXCEPTION", err)
	}
}
