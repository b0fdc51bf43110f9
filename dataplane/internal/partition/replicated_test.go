package partition

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/dataplane/internal/batch"
	"github.com/chronik-stream/chronik/dataplane/internal/producer"
	"github.com/chronik-stream/chronik/dataplane/internal/storage"
)

func testBatch(tag string, pid int64, seq int32) []byte {
	r := kmsg.Record{Value: []byte(tag)}
	r.Length = int32(len(r.AppendTo(nil)) - 1)
	recs := r.AppendTo(nil)
	epoch := int16(0)
	if pid < 0 {
		epoch, seq = -1, -1
	}
	rb := kmsg.RecordBatch{Length: int32(batch.HeaderSize - batch.LogOverhead + len(recs)), Magic: batch.Magic,
		ProducerID: pid, ProducerEpoch: epoch, FirstSequence: seq, NumRecords: 1, Records: recs}
	b := rb.AppendTo(nil)
	batch.SetCRC(b)
	return b
}

func openTest(t *testing.T) *Partition {
	t.Helper()
	p, err := Open("t", 0, Config{Storage: storage.Config{Dir: t.TempDir()}, MaxMessageBytes: 1 << 20}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func readAll(t *testing.T, p *Partition) []byte {
	t.Helper()
	c, err := p.data.Read(p.LogStartOffset(), 1<<20, p.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	b, err := c.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReplicatedCalls copies one replica into another batch for batch,
// cuts both back and checks the producer table travels with a snapshot.
func TestReplicatedCalls(t *testing.T) {
	src, dst := openTest(t), openTest(t)
	for i := range 6 {
		if _, err := src.Apply(testBatch(fmt.Sprint("v", i), 7, int32(i)), int32(1+i/3)); err != nil {
			t.Fatal(err)
		}
	}
	end, start, prods, err := src.SnapshotState()
	if err != nil || end != 6 || start != 0 {
		t.Fatalf("snapshot state %d %d %v", end, start, err)
	}
	all := readAll(t, src)
	if err := dst.AppendCopy(all[:0]); err != nil {
		t.Fatalf("empty copy: %v", err)
	}
	if err := dst.AppendCopy(all); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, dst), all) {
		t.Fatal("copy differs from its source")
	}
	if err := dst.AppendCopy(all); !errors.Is(err, ErrNotContiguous) {
		t.Fatalf("copy of a gap: %v", err)
	}
	bad := bytes.Clone(all[:len(all)/6])
	batch.SetBaseOffset(bad, 6)
	bad[len(bad)-1] ^= 1
	if err := dst.AppendCopy(bad); !errors.Is(err, batch.ErrCorrupt) {
		t.Fatalf("copy of a corrupt batch: %v", err)
	}

	// Without the producer table, a retry is not recognised.
	if _, err := dst.Apply(testBatch("v5", 7, 5), 2); !errors.Is(err, producer.ErrOutOfOrder) {
		t.Fatalf("retry before restoring producers: %v", err)
	}
	if err := dst.RestoreProducers(prods); err != nil {
		t.Fatal(err)
	}
	if res, err := dst.Apply(testBatch("v5", 7, 5), 2); err != nil || !res.Duplicate || res.BaseOffset != 5 {
		t.Fatalf("retry after restoring producers: %+v %v", res, err)
	}

	dst.SetHighWatermark(6)
	if err := dst.TruncateTo(4); err != nil {
		t.Fatal(err)
	}
	if dst.LogEndOffset() != 4 || dst.HighWatermark() != 4 {
		t.Fatalf("after truncate: end %d, high watermark %d", dst.LogEndOffset(), dst.HighWatermark())
	}
	if !bytes.Equal(readAll(t, dst), all[:4*len(all)/6]) {
		t.Fatal("truncated log differs from the source's prefix")
	}
	if err := dst.ResetTo(10); err != nil || dst.LogStartOffset() != 10 || dst.LogEndOffset() != 10 {
		t.Fatalf("reset: %v, start %d end %d", err, dst.LogStartOffset(), dst.LogEndOffset())
	}
}
