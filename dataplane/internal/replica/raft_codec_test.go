package replica

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestEntryCodec(t *testing.T) {
	b := encodeBatchEntry([]byte("batch"))
	if k, body, err := decodeEntry(b); err != nil || k != entryBatch || string(body) != "batch" {
		t.Fatalf("batch entry: %d %q %v", k, body, err)
	}
	if k, body, err := decodeEntry(encodeDeleteEntry(42)); err != nil || k != entryDelete || len(body) != 8 || body[7] != 42 {
		t.Fatalf("delete entry: %d %v %v", k, body, err)
	}
	for _, bad := range [][]byte{nil, {entryBatch}, {entryDelete, 1}, {9, 1, 2}, encodeDeleteEntry(-1)} {
		if _, _, err := decodeEntry(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decode %v: %v", bad, err)
		}
	}
}

func TestSnapRecordCodec(t *testing.T) {
	r := snapRecord{End: 1234, Start: 7, Producers: []byte{0, 0, 0, 0}}
	got, err := decodeSnapRecord(r.encode())
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	enc := r.encode()
	for _, bad := range [][]byte{enc[:10], append(bytes.Clone(enc), 1), []byte("XXXX" + string(enc[4:])),
		snapRecord{End: 1, Start: 2}.encode()} {
		if _, err := decodeSnapRecord(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decode %v: %v", bad, err)
		}
	}
}

func TestRPCCodecs(t *testing.T) {
	q := readRequest{Topic: "orders", Partition: 3, Offset: 99, MaxBytes: 1 << 20}
	if got, err := decodeReadRequest(q.encode()); err != nil || got != q {
		t.Fatalf("read request: %+v %v", got, err)
	}
	p := readResponse{Start: 5, End: 10, Records: []byte("abc")}
	if got, err := decodeReadResponse(p.encode()); err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("read response: %+v %v", got, err)
	}
	rs := []isrReport{{Topic: "a", Partition: 0, Term: 3, Applied: 100}, {Topic: "b", Partition: 7, Term: 1, Applied: 2}}
	from, got, err := decodeISRReports(encodeISRReports(2, rs))
	if err != nil || from != 2 || !reflect.DeepEqual(got, rs) {
		t.Fatalf("isr reports: %d %+v %v", from, got, err)
	}
	if _, _, err := decodeISRReports(append(encodeISRReports(2, rs), 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("trailing byte: %v", err)
	}
	if _, err := decodeReadRequest((readRequest{Topic: "a", MaxBytes: 0}).encode()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("zero max bytes: %v", err)
	}
}

// The decoders read what other nodes (or the disk) hand them: they must
// fail cleanly on anything, and what they accept must encode back the same.
func FuzzDecoders(f *testing.F) {
	f.Add(encodeBatchEntry([]byte{1, 2, 3}))
	f.Add(encodeDeleteEntry(77))
	f.Add(snapRecord{End: 10, Start: 2, Producers: []byte{0, 0, 0, 0}}.encode())
	f.Add(readRequest{Topic: "t", Partition: 1, Offset: 5, MaxBytes: 100}.encode())
	f.Add(readResponse{Start: 1, End: 9, Records: []byte("x")}.encode())
	f.Add(encodeISRReports(3, []isrReport{{Topic: "t", Partition: 2, Term: 4, Applied: 8}}))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, body, err := decodeEntry(b); err == nil {
			var re []byte
			if k == entryBatch {
				re = encodeBatchEntry(body)
			} else {
				re = append([]byte{entryDelete}, body...)
			}
			if !bytes.Equal(re, b) {
				t.Fatalf("entry %v re-encodes as %v", b, re)
			}
		}
		if r, err := decodeSnapRecord(b); err == nil && !bytes.Equal(r.encode(), b) {
			t.Fatalf("snapshot record re-encodes differently")
		}
		if q, err := decodeReadRequest(b); err == nil {
			if _, err := decodeReadRequest(q.encode()); err != nil {
				t.Fatalf("read request %+v does not decode after encoding: %v", q, err)
			}
		}
		if p, err := decodeReadResponse(b); err == nil {
			if got, err := decodeReadResponse(p.encode()); err != nil || got.Start != p.Start || got.End != p.End || !bytes.Equal(got.Records, p.Records) {
				t.Fatalf("read response %+v round trip: %+v %v", p, got, err)
			}
		}
		if from, rs, err := decodeISRReports(b); err == nil {
			if from2, rs2, err := decodeISRReports(encodeISRReports(from, rs)); err != nil || from2 != from || len(rs2) != len(rs) {
				t.Fatalf("isr reports round trip: %v", err)
			}
		}
	})
}
