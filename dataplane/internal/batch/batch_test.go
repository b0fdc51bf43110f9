package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// spec describes a batch for build.
type spec struct {
	base       int64
	epoch      int32
	records    int
	attrs      int16
	baseTs     int64
	pid        int64
	pepoch     int16
	seq        int32
	valueBytes int
}

// build encodes a batch with kmsg, the same encoder franz-go clients use,
// and fills in the length and CRC the way a producer does.
func build(s spec) []byte {
	var recs []byte
	for i := range s.records {
		r := kmsg.Record{
			TimestampDelta64: int64(i),
			OffsetDelta:      int32(i),
			Key:              fmt.Appendf(nil, "k%d", i),
			Value:            bytes.Repeat([]byte{byte('a' + i%26)}, s.valueBytes),
		}
		r.Length = int32(len(r.AppendTo(nil)) - 1) // minus the zero varint length itself
		recs = r.AppendTo(recs)
	}
	rb := kmsg.RecordBatch{
		FirstOffset:          s.base,
		Length:               int32(HeaderSize - LogOverhead + len(recs)),
		PartitionLeaderEpoch: s.epoch,
		Magic:                Magic,
		Attributes:           s.attrs,
		LastOffsetDelta:      int32(s.records - 1),
		FirstTimestamp:       s.baseTs,
		MaxTimestamp:         s.baseTs + int64(max(s.records-1, 0)),
		ProducerID:           s.pid,
		ProducerEpoch:        s.pepoch,
		FirstSequence:        s.seq,
		NumRecords:           int32(s.records),
		Records:              recs,
	}
	b := rb.AppendTo(nil)
	SetCRC(b)
	return b
}

func plain(n int) spec {
	return spec{records: n, baseTs: 1_700_000_000_000, pid: -1, pepoch: -1, seq: -1, valueBytes: 10}
}

func TestParseHeaderMatchesKmsg(t *testing.T) {
	specs := []spec{
		plain(1),
		plain(17),
		{base: 42, epoch: 7, records: 3, attrs: int16(CompressionZstd) | transactionalBit, baseTs: 5, pid: 99, pepoch: 2, seq: 10, valueBytes: 3},
		{base: 1 << 40, epoch: -1, records: 1, attrs: controlBit | timestampTypeBit | int16(CompressionGzip), baseTs: -1, pid: 1, pepoch: 0, seq: 0},
	}
	for i, s := range specs {
		b := build(s)
		h, err := ParseHeader(b)
		if err != nil {
			t.Fatalf("spec %d: parse: %v", i, err)
		}
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b); err != nil {
			t.Fatalf("spec %d: kmsg: %v", i, err)
		}
		want := Header{
			BaseOffset: rb.FirstOffset, BatchLength: rb.Length, PartitionLeaderEpoch: rb.PartitionLeaderEpoch,
			Magic: rb.Magic, CRC: uint32(rb.CRC), Attributes: rb.Attributes, LastOffsetDelta: rb.LastOffsetDelta,
			BaseTimestamp: rb.FirstTimestamp, MaxTimestamp: rb.MaxTimestamp, ProducerID: rb.ProducerID,
			ProducerEpoch: rb.ProducerEpoch, BaseSequence: rb.FirstSequence, RecordCount: rb.NumRecords,
		}
		if h != want {
			t.Fatalf("spec %d: header\n got %+v\nwant %+v", i, h, want)
		}
		if h.Size() != len(b) {
			t.Fatalf("spec %d: size %d, encoded %d", i, h.Size(), len(b))
		}
		if h.LastOffset() != s.base+int64(s.records-1) || h.NextOffset() != s.base+int64(s.records) {
			t.Fatalf("spec %d: last %d next %d", i, h.LastOffset(), h.NextOffset())
		}
		if h.Compression() != Compression(s.attrs&7) || h.IsTransactional() != (s.attrs&transactionalBit != 0) ||
			h.IsControl() != (s.attrs&controlBit != 0) || (h.TimestampType() == LogAppendTime) != (s.attrs&timestampTypeBit != 0) {
			t.Fatalf("spec %d: attribute helpers disagree with %#x", i, s.attrs)
		}
		if err := Validate(b); err != nil {
			t.Fatalf("spec %d: validate: %v", i, err)
		}
	}
}

func TestCompressionString(t *testing.T) {
	for c, want := range map[Compression]string{0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd", 9: "unknown(9)"} {
		if got := c.String(); got != want {
			t.Errorf("%d: %q, want %q", c, got, want)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	good := build(plain(4))
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	recrc := func(f func(b []byte)) []byte {
		return edit(func(b []byte) []byte { f(b); SetCRC(b); return b })
	}
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTooShort},
		{"before magic", good[:10], ErrTooShort},
		{"header cut", good[:40], ErrTooShort},
		{"records cut", good[:len(good)-1], ErrTooShort},
		{"trailing byte", append(bytes.Clone(good), 0), ErrCorrupt},
		{"flipped record byte", edit(func(b []byte) []byte { b[len(b)-2] ^= 1; return b }), ErrCorrupt},
		{"flipped crc", edit(func(b []byte) []byte { b[offCRC] ^= 0x80; return b }), ErrCorrupt},
		{"magic 1", edit(func(b []byte) []byte { b[offMagic] = 1; return b }), ErrUnsupportedMagic},
		{"magic 0 short", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 14, 0, 0, 0, 0, 0}, ErrUnsupportedMagic},
		{"length below header", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offBatchLength:], 48)
			return b
		}), ErrCorrupt},
		{"zero records", recrc(func(b []byte) {
			binary.BigEndian.PutUint32(b[offRecordCount:], 0)
			binary.BigEndian.PutUint32(b[offLastOffsetDelta:], 0xffffffff)
		}), ErrInvalidRecord},
		{"negative records", recrc(func(b []byte) { binary.BigEndian.PutUint32(b[offRecordCount:], 0xfffffff0) }), ErrInvalidRecord},
		{"count mismatch", recrc(func(b []byte) { binary.BigEndian.PutUint32(b[offLastOffsetDelta:], 9) }), ErrInvalidRecord},
		{"unknown codec", recrc(func(b []byte) { binary.BigEndian.PutUint16(b[offAttributes:], 6) }), ErrInvalidRecord},
	}
	for _, c := range cases {
		err := Validate(c.b)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestSetBaseOffsetAndEpochKeepCRC(t *testing.T) {
	b := build(spec{records: 5, baseTs: 100, pid: 3, pepoch: 1, seq: 7, valueBytes: 100})
	SetBaseOffset(b, 123456789)
	SetPartitionLeaderEpoch(b, 42)
	if err := Validate(b); err != nil {
		t.Fatalf("validate after rewrite: %v", err)
	}
	h, _ := ParseHeader(b)
	if h.BaseOffset != 123456789 || h.PartitionLeaderEpoch != 42 || h.LastOffset() != 123456793 {
		t.Fatalf("header after rewrite: %+v", h)
	}
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(b); err != nil || rb.FirstOffset != 123456789 || rb.PartitionLeaderEpoch != 42 {
		t.Fatalf("kmsg after rewrite: %+v %v", rb, err)
	}
}

func TestSplit(t *testing.T) {
	b1, b2, b3 := build(plain(1)), build(plain(3)), build(plain(2))
	whole := bytes.Join([][]byte{b1, b2, b3}, nil)
	for cut := 0; cut <= len(b3); cut++ {
		buf := append(append(bytes.Clone(b1), b2...), b3[:cut]...)
		batches, rest, err := Split(buf)
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		wantN, wantRest := 2, b3[:cut]
		if cut == len(b3) {
			wantN, wantRest = 3, nil
		}
		if len(batches) != wantN || !bytes.Equal(rest, wantRest) {
			t.Fatalf("cut %d: %d batches, rest %d bytes", cut, len(batches), len(rest))
		}
		if !bytes.Equal(batches[0], b1) || !bytes.Equal(batches[1], b2) {
			t.Fatalf("cut %d: batches differ", cut)
		}
	}
	batches, _, _ := Split(whole)
	// Appending to a returned batch must not clobber the next one.
	_ = append(batches[0], 0xff)
	if !bytes.Equal(batches[1], b2) {
		t.Fatal("append to a split batch clobbered its neighbour")
	}

	bad := bytes.Clone(whole)
	binary.BigEndian.PutUint32(bad[len(b1)+offBatchLength:], 3)
	batches, rest, err := Split(bad)
	if !errors.Is(err, ErrCorrupt) || len(batches) != 1 || len(rest) != len(whole)-len(b1) {
		t.Fatalf("corrupt middle: %d batches, %d rest, err %v", len(batches), len(rest), err)
	}
	if batches, rest, err := Split(nil); batches != nil || len(rest) != 0 || err != nil {
		t.Fatalf("empty: %v %v %v", batches, rest, err)
	}
}

func TestIterDoesNotAllocate(t *testing.T) {
	buf := bytes.Join([][]byte{build(plain(1)), build(plain(2)), build(plain(3))}, nil)
	allocs := testing.AllocsPerRun(100, func() {
		it := NewIter(buf)
		n := 0
		for _, ok := it.Next(); ok; _, ok = it.Next() {
			n++
		}
		if n != 3 {
			panic("wrong count")
		}
	})
	if allocs != 0 {
		t.Fatalf("iter allocates %v per walk", allocs)
	}
}

func FuzzBatch(f *testing.F) {
	good := build(spec{base: 5, epoch: 3, records: 3, attrs: 1, baseTs: 9, pid: 1, pepoch: 1, seq: 0, valueBytes: 4})
	f.Add(good)
	f.Add(append(bytes.Clone(good), good[:30]...))
	f.Add(good[:HeaderSize])
	f.Add(good[:20])
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0}, 80))
	f.Add(bytes.Repeat([]byte{0xff}, 80))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, perr := ParseHeader(data)
		verr := Validate(data)
		if verr == nil {
			if perr != nil || h.Size() != len(data) || h.RecordCount < 1 || Checksum(data) != h.CRC {
				t.Fatalf("validated batch with bad header %+v (%v)", h, perr)
			}
		}
		batches, rest, err := Split(data)
		var joined []byte
		for _, b := range batches {
			if len(b) < LogOverhead {
				t.Fatalf("split returned %d-byte batch", len(b))
			}
			joined = append(joined, b...)
		}
		joined = append(joined, rest...)
		if !bytes.Equal(joined, data) {
			t.Fatal("split lost or reordered bytes")
		}
		if err == nil && len(rest) >= LogOverhead {
			n := int(int32(binary.BigEndian.Uint32(rest[offBatchLength:])))
			if LogOverhead+n <= len(rest) {
				t.Fatalf("split left a whole batch in rest")
			}
		}
	})
}
