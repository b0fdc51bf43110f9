package kafka

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/dataplane/internal/batch"
	"github.com/chronik-stream/chronik/dataplane/internal/storage"
)

// testBatch builds a producer batch of n records with values of valueBytes
// that carry tag, with a valid CRC.
func testBatch(n, valueBytes int, tag string) []byte {
	var recs []byte
	for i := range n {
		v := fmt.Appendf(nil, "%s/%d/", tag, i)
		for len(v) < valueBytes {
			v = append(v, byte('a'+len(v)%26))
		}
		r := kmsg.Record{OffsetDelta: int32(i), TimestampDelta64: int64(i), Value: v}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		recs = r.AppendTo(recs)
	}
	rb := kmsg.RecordBatch{
		Length: int32(batch.HeaderSize - batch.LogOverhead + len(recs)), Magic: batch.Magic,
		LastOffsetDelta: int32(n - 1), FirstTimestamp: 1_700_000_000_000, MaxTimestamp: 1_700_000_000_000 + int64(n-1),
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(n), Records: recs,
	}
	b := rb.AppendTo(nil)
	batch.SetCRC(b)
	return b
}

// spliceLog is a log of batches from 100 B to 60 KiB in segments of at
// most 128 KiB, so that reads cross segments and some chunks are large
// enough for sendfile.
func spliceLog(tb testing.TB) *storage.Log {
	tb.Helper()
	l, err := storage.Open(storage.Config{Dir: tb.TempDir(), SegmentBytes: 128 << 10, RetentionMs: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	sizes := []int{100, 3000, 60 << 10, 700, 20 << 10, 45 << 10, 9000}
	for i := range 40 {
		if _, _, err := l.Append(testBatch(1+i%4, sizes[i%len(sizes)], fmt.Sprint("b", i)), 3); err != nil {
			tb.Fatal(err)
		}
	}
	return l
}

// readSet reads a partition's record set the way the handler does.
func readSet(tb testing.TB, l *storage.Log, offset int64, limit int) recordSet {
	tb.Helper()
	var set recordSet
	size := 0
	for size < limit && offset < l.LogEndOffset() {
		c, err := l.Read(offset, limit-size, l.LogEndOffset())
		if err != nil {
			tb.Fatal(err)
		}
		if c.Len == 0 || len(set) > 0 && size+c.Len > limit {
			c.Release()
			break
		}
		set = append(set, c)
		size += c.Len
		offset = c.NextOffset
		if !c.SegmentEnd {
			break
		}
	}
	return set
}

// spliceCase describes a response: per partition, where it reads from and
// how much (limit 0: no records, an error instead).
type spliceCase struct {
	version int16
	parts   []struct {
		offset int64
		limit  int
	}
	leaderTag bool // flexible versions: a CurrentLeader tagged field
}

// build makes the response of c with record sets read from l, spread over
// two topics in an interleaved order.
func (c spliceCase) build(tb testing.TB, l *storage.Log) (*kmsg.FetchResponse, [][]recordSet) {
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(c.version)
	resp.SessionID = 77
	resp.Topics = []kmsg.FetchResponseTopic{{Topic: "alpha", TopicID: [16]byte{1}}, {Topic: "beta", TopicID: [16]byte{2}}}
	sets := make([][]recordSet, 2)
	for i, p := range c.parts {
		t := i % 2
		op := kmsg.NewFetchResponseTopicPartition()
		op.Partition, op.HighWatermark, op.LastStableOffset, op.LogStartOffset = int32(i), l.LogEndOffset(), l.LogEndOffset(), 0
		if c.leaderTag && i%3 == 0 {
			op.CurrentLeader.LeaderID, op.CurrentLeader.LeaderEpoch = 1, 9
		}
		var set recordSet
		if p.limit > 0 {
			set = readSet(tb, l, p.offset, p.limit)
		} else {
			op.ErrorCode = 6
		}
		if len(set) == 0 {
			op.RecordBatches = []byte{}
		}
		resp.Topics[t].Partitions = append(resp.Topics[t].Partitions, op)
		sets[t] = append(sets[t], set)
	}
	if c.version >= 16 {
		resp.Brokers = []kmsg.FetchResponseBroker{{NodeID: 1, Host: "localhost", Port: 9092}}
	}
	return resp, sets
}

// copied is the plain encoding of the response with the sets read into it.
func copied(tb testing.TB, resp *kmsg.FetchResponse, sets [][]recordSet, corr int32) []byte {
	tb.Helper()
	c := *resp
	c.Topics = nil
	for i, t := range resp.Topics {
		t.Partitions = append([]kmsg.FetchResponseTopicPartition(nil), t.Partitions...)
		for j := range t.Partitions {
			if len(sets[i][j]) > 0 {
				var b []byte
				for _, ch := range sets[i][j] {
					all, err := ch.ReadAll()
					if err != nil {
						tb.Fatal(err)
					}
					b = append(b, all...)
				}
				t.Partitions[j].RecordBatches = b
			}
		}
		c.Topics = append(c.Topics, t)
	}
	return appendResponse(nil, &pending{corr: corr, flex: c.IsFlexible(), resp: &c})
}

// spliced writes the response through the zero-copy writer, to a buffer
// or, when sock is set, through a real socket with sendfile.
func spliced(tb testing.TB, resp *kmsg.FetchResponse, sets [][]recordSet, corr int32, sock bool) []byte {
	tb.Helper()
	z, ok := newZeroCopyFetch(resp, sets).(*zeroCopyFetch)
	if !ok {
		return appendResponse(nil, &pending{corr: corr, flex: resp.IsFlexible(), resp: resp})
	}
	frame, cuts, ok := z.appendFrame(nil, &frameScratch{}, corr, resp.IsFlexible())
	if !ok {
		tb.Fatal("placeholders not found")
	}
	if !sock {
		var out bytes.Buffer
		bw := bufio.NewWriterSize(&out, 4096)
		if _, err := (&chunkSender{bw: bw}).writeFrame(frame, cuts, z.sets); err != nil {
			tb.Fatal(err)
		}
		bw.Flush()
		return out.Bytes()
	}
	client, server := tcpPair(tb)
	got := make(chan []byte, 1)
	go func() { // joined by the receive below
		b, _ := io.ReadAll(client)
		got <- b
	}()
	raw, err := server.(syscall.Conn).SyscallConn()
	if err != nil {
		tb.Fatal(err)
	}
	bw := bufio.NewWriterSize(server, 4096)
	if _, err := (&chunkSender{bw: bw, raw: raw}).writeFrame(frame, cuts, z.sets); err != nil {
		tb.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		tb.Fatal(err)
	}
	server.Close()
	select {
	case b := <-got:
		return b
	case <-time.After(10 * time.Second):
		tb.Fatal("socket read did not finish")
		return nil
	}
}

func tcpPair(tb testing.TB) (client, server net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	if server, err = ln.Accept(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// checkSplice compares the spliced form of c with the copied form, byte for
// byte, and decodes it with kmsg.
func checkSplice(t testing.TB, l *storage.Log, c spliceCase, sock bool) {
	resp, sets := c.build(t, l)
	defer func() {
		for _, ts := range sets {
			for _, s := range ts {
				s.release()
			}
		}
	}()
	want := copied(t, resp, sets, 42)
	got := spliced(t, resp, sets, 42, sock)
	if !bytes.Equal(got, want) {
		t.Fatalf("v%d: spliced frame (%d bytes) differs from the copied one (%d bytes)", c.version, len(got), len(want))
	}
	if n := int(binary.BigEndian.Uint32(got)); n != len(got)-4 {
		t.Fatalf("v%d: size prefix %d, frame body %d", c.version, n, len(got)-4)
	}
	body := got[8:]
	if resp.IsFlexible() {
		body = body[1:]
	}
	dec := kmsg.NewPtrFetchResponse()
	dec.SetVersion(c.version)
	if err := dec.ReadFrom(body); err != nil {
		t.Fatalf("v%d: decode spliced frame: %v", c.version, err)
	}
	k := 0
	for ti, tp := range dec.Topics {
		for pi, p := range tp.Partitions {
			if want := sets[ti][pi].size(); len(p.RecordBatches) != want {
				t.Fatalf("v%d: partition %d decodes %d record bytes, want %d", c.version, p.Partition, len(p.RecordBatches), want)
			}
			k++
		}
	}
	if k != len(c.parts) {
		t.Fatalf("v%d: decoded %d partitions, want %d", c.version, k, len(c.parts))
	}
}

func TestFetchSpliceMatchesCopy(t *testing.T) {
	l := spliceLog(t)
	end := l.LogEndOffset()
	for v := int16(4); v <= 16; v++ {
		c := spliceCase{version: v, leaderTag: true}
		for i, lim := range []int{1 << 20, 0, 500, 200 << 10, 1 << 20, 50 << 10, 0, 300 << 10} {
			c.parts = append(c.parts, struct {
				offset int64
				limit  int
			}{int64(i*7) % end, lim})
		}
		for _, sock := range []bool{false, true} {
			t.Run(fmt.Sprintf("v%d/sendfile=%v", v, sock), func(t *testing.T) { checkSplice(t, l, c, sock) })
		}
	}
}

// TestFetchSpliceAfterRetention deletes the segments a response reads from
// before it is written: the chunks still hold the files.
func TestFetchSpliceAfterRetention(t *testing.T) {
	l := spliceLog(t)
	c := spliceCase{version: 12}
	c.parts = append(c.parts, struct {
		offset int64
		limit  int
	}{0, 1 << 20})
	resp, sets := c.build(t, l)
	want := copied(t, resp, sets, 9)
	if err := l.SetLogStartOffset(l.LogEndOffset() - 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(l.Dir(), "00000000000000000000.log")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("first segment still there: %v", err)
	}
	got := spliced(t, resp, sets, 9, true)
	sets[0][0].release()
	if !bytes.Equal(got, want) {
		t.Fatal("spliced frame after retention differs from the copied one")
	}
}

// FuzzFetchSplice builds responses from fuzzed partition lists and checks
// that the spliced frame equals the copied one.
func FuzzFetchSplice(f *testing.F) {
	l := spliceLog(f)
	f.Add(uint8(4), []byte{0, 10, 3, 200, 7, 0})
	f.Add(uint8(11), []byte{1, 255, 2, 2})
	f.Add(uint8(12), []byte{5, 100, 9, 0, 30, 255, 31, 1})
	f.Add(uint8(16), []byte{})
	f.Add(uint8(13), []byte{39, 1, 0, 255})
	end := l.LogEndOffset()
	f.Fuzz(func(t *testing.T, v uint8, spec []byte) {
		c := spliceCase{version: 4 + int16(v%13), leaderTag: v&0x80 != 0}
		for i := 0; i+1 < len(spec) && len(c.parts) < 20; i += 2 {
			c.parts = append(c.parts, struct {
				offset int64
				limit  int
			}{int64(spec[i]) % end, int(spec[i+1]) << 11})
		}
		checkSplice(t, l, c, false)
	})
}
