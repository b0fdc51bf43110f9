package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chronik-stream/chronik/dataplane/internal/batch"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// makeBatch builds a producer batch the way franz-go encodes one: n records
// whose values carry tag, timestamps from ts, a valid length and CRC. Its
// base offset and leader epoch are junk that Append must overwrite.
func makeBatch(n int, ts int64, valueBytes int, tag string) []byte {
	var recs []byte
	for i := range n {
		v := fmt.Appendf(nil, "%s/%d/", tag, i)
		for len(v) < valueBytes {
			v = append(v, byte('a'+len(v)%26))
		}
		r := kmsg.Record{TimestampDelta64: int64(i), OffsetDelta: int32(i), Value: v}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		recs = r.AppendTo(recs)
	}
	rb := kmsg.RecordBatch{
		FirstOffset:          -12345,
		Length:               int32(batch.HeaderSize - batch.LogOverhead + len(recs)),
		PartitionLeaderEpoch: -7,
		Magic:                batch.Magic,
		LastOffsetDelta:      int32(n - 1),
		FirstTimestamp:       ts,
		MaxTimestamp:         ts + int64(n-1),
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           int32(n),
		Records:              recs,
	}
	b := rb.AppendTo(nil)
	batch.SetCRC(b)
	return b
}

// stored is what a batch must look like in the log after Append.
func stored(b []byte, base int64, epoch int32) []byte {
	b = bytes.Clone(b)
	batch.SetBaseOffset(b, base)
	batch.SetPartitionLeaderEpoch(b, epoch)
	return b
}

// model mirrors a log's expected content: every batch with its offsets.
type model struct {
	batches [][]byte // as stored
	bases   []int64
}

func (m *model) add(b []byte, base int64, epoch int32) {
	m.batches = append(m.batches, stored(b, base, epoch))
	m.bases = append(m.bases, base)
}

// containing returns the index of the batch that holds offset.
func (m *model) containing(off int64) int {
	for i, b := range m.batches {
		h, _ := batch.ParseHeader(b)
		if off >= h.BaseOffset && off <= h.LastOffset() {
			return i
		}
	}
	return -1
}

// from returns the expected batches from index i on, concatenated.
func (m *model) from(i int) []byte { return bytes.Join(m.batches[i:], nil) }

// truncate keeps the batches below end.
func (m *model) truncate(end int64) {
	for len(m.bases) > 0 {
		h, _ := batch.ParseHeader(m.batches[len(m.batches)-1])
		if h.NextOffset() <= end {
			return
		}
		m.batches, m.bases = m.batches[:len(m.batches)-1], m.bases[:len(m.bases)-1]
	}
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fakeClock is a settable clock for segment age and retention.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.UnixMilli(1_700_000_000_000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// openLog opens a log in dir and closes it at the end of the test.
func openLog(t testing.TB, cfg Config) *Log {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	l, err := Open(cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustAppend(t testing.TB, l *Log, m *model, b []byte, epoch int32) (int64, int64) {
	t.Helper()
	first, last, err := l.Append(b, epoch)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if m != nil {
		for it := batch.NewIter(b); ; {
			raw, ok := it.Next()
			if !ok {
				break
			}
			h, _ := batch.ParseHeader(raw)
			m.add(raw, first, epoch)
			first += int64(h.LastOffsetDelta) + 1
		}
	}
	return first, last
}

func mustSync(t testing.TB, l *Log, upTo int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Sync(ctx, upTo); err != nil {
		t.Fatalf("sync to %d: %v", upTo, err)
	}
}

// readAll walks the whole log through Read and returns its bytes.
func readAll(t testing.TB, l *Log) []byte {
	t.Helper()
	var out []byte
	off, end := l.LogStartOffset(), l.LogEndOffset()
	for off < end {
		c, err := l.Read(off, 64<<10, end)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		b, err := c.ReadAll()
		c.Release()
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		if c.Len == 0 || c.NextOffset <= off {
			t.Fatalf("read %d: no progress (chunk %+v)", off, c)
		}
		out = append(out, b...)
		off = c.NextOffset
	}
	return out
}

// checkLog compares the log's content with the model from the log start.
func checkLog(t testing.TB, l *Log, m *model) {
	t.Helper()
	if n := len(m.batches); n > 0 {
		h, _ := batch.ParseHeader(m.batches[n-1])
		if got := l.LogEndOffset(); got != h.NextOffset() {
			t.Fatalf("log end %d, want %d", got, h.NextOffset())
		}
	}
	i := m.containing(l.LogStartOffset())
	if i < 0 {
		i = len(m.batches)
	}
	got := readAll(t, l)
	if want := m.from(i); !bytes.Equal(got, want) {
		t.Fatalf("log content differs: got %d bytes, want %d", len(got), len(want))
	}
	for _, raw := range m.batches[i:] {
		if err := batch.Validate(raw); err != nil {
			t.Fatalf("model batch invalid: %v", err)
		}
	}
}

func segmentCount(l *Log) int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.segs)
}

// crash closes a log and removes the clean shutdown marker, so the next
// Open recovers as after an unclean stop.
func crash(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := os.Remove(filepath.Join(l.Dir(), cleanShutdownFile)); err != nil {
		t.Fatalf("remove marker: %v", err)
	}
}

// lastSegmentPath is the .log file of the last segment.
func lastSegmentPath(t testing.TB, dir string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no segments in %s: %v", dir, err)
	}
	return m[len(m)-1]
}

func isOutOfRange(err error) bool { return errors.Is(err, ErrOffsetOutOfRange) }
