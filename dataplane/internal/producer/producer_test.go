package producer

import (
	"errors"
	"math"
	"testing"
)

func TestCheckSequences(t *testing.T) {
	tb := NewTable()
	off := int64(0)
	appendBatch := func(pid int64, epoch int16, first, last int32) {
		t.Helper()
		dup, err := tb.Check(pid, epoch, first, last)
		if err != nil || dup != nil {
			t.Fatalf("check %d %d-%d: dup=%v err=%v", pid, first, last, dup, err)
		}
		n := int64(last - first + 1)
		tb.Record(pid, epoch, Batch{FirstSeq: first, LastSeq: last, FirstOffset: off, LastOffset: off + n - 1})
		off += n
	}
	appendBatch(7, 0, 0, 9)
	appendBatch(7, 0, 10, 19)

	dup, err := tb.Check(7, 0, 0, 9)
	if err != nil || dup == nil || dup.FirstOffset != 0 || dup.LastOffset != 9 {
		t.Fatalf("retry of first batch: dup=%+v err=%v", dup, err)
	}
	if _, err := tb.Check(7, 0, 25, 30); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("gap: %v", err)
	}
	if _, err := tb.Check(8, 0, 3, 4); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("new producer mid-sequence: %v", err)
	}
	// Epoch bump must restart at zero; an older epoch is fenced.
	appendBatch(7, 1, 0, 0)
	if _, err := tb.Check(7, 0, 20, 20); !errors.Is(err, ErrInvalidEpoch) {
		t.Fatalf("old epoch: %v", err)
	}
	if _, err := tb.Check(7, 2, 5, 5); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("new epoch not at zero: %v", err)
	}
	// Only the last five batches are remembered.
	for i := int32(1); i <= 6; i++ {
		appendBatch(7, 1, i, i)
	}
	if dup, _ := tb.Check(7, 1, 1, 1); dup != nil {
		t.Fatalf("batch 1 should have been forgotten, got %+v", dup)
	}
	if dup, _ := tb.Check(7, 1, 2, 2); dup == nil {
		t.Fatal("batch 2 should be remembered")
	}
	// Non-idempotent producers are never checked.
	if dup, err := tb.Check(-1, -1, -1, -1); dup != nil || err != nil {
		t.Fatal("pid -1 must pass")
	}
}

func TestSequenceWrap(t *testing.T) {
	tb := NewTable()
	tb.Record(1, 0, Batch{FirstSeq: math.MaxInt32 - 1, LastSeq: math.MaxInt32})
	if _, err := tb.Check(1, 0, 0, 3); err != nil {
		t.Fatalf("wrap: %v", err)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	tb := NewTable()
	for pid := int64(1); pid <= 3; pid++ {
		for s := int32(0); s < 7; s++ {
			tb.Record(pid, int16(pid), Batch{FirstSeq: s, LastSeq: s, FirstOffset: int64(s), LastOffset: int64(s), Timestamp: 99})
		}
	}
	b, _ := tb.MarshalBinary()
	got := NewTable()
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if got.Len() != 3 || got.Epoch(2) != 2 {
		t.Fatalf("restored %d producers, epoch %d", got.Len(), got.Epoch(2))
	}
	if dup, _ := got.Check(3, 3, 6, 6); dup == nil || dup.LastOffset != 6 {
		t.Fatalf("restored table lost a batch: %+v", dup)
	}
	got.ExpireBefore(100)
	if got.Len() != 0 {
		t.Fatal("expire kept producers")
	}
}

func FuzzUnmarshal(f *testing.F) {
	tb := NewTable()
	tb.Record(1, 0, Batch{LastSeq: 3, LastOffset: 3})
	b, _ := tb.MarshalBinary()
	f.Add(b)
	f.Add([]byte{0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var x Table
		if x.UnmarshalBinary(b) == nil {
			again, _ := x.MarshalBinary()
			var y Table
			if err := y.UnmarshalBinary(again); err != nil {
				t.Fatalf("re-decode: %v", err)
			}
		}
	})
}
