package kafka

import (
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzRequest feeds arbitrary frames to the request decoder: it must return
// an error or a request, never panic or allocate without bound.
func FuzzRequest(f *testing.F) {
	for key, a := range registry {
		req := kmsg.RequestForKey(key)
		req.SetVersion(a.max)
		f.Add(encodeFrame(key, a.max, 7, "fuzz", req))
		req.SetVersion(a.min)
		f.Add(encodeFrame(key, a.min, 7, "", req))
	}
	f.Add([]byte{0, 18, 0, 99, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, body []byte) {
		fr, err := decode(body)
		if err == nil && fr.req == nil {
			t.Fatal("no error and no request")
		}
	})
}

func encodeFrame(key, version int16, corr int32, client string, req kmsg.Request) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, uint16(len(client)))
	b = append(b, client...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	return req.AppendTo(b)
}

func TestDecodeRejects(t *testing.T) {
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(12)
	good := encodeFrame(3, 12, 1, "c", meta)
	cases := map[string][]byte{
		"short":           {0, 3, 0},
		"unknown key":     {0x7f, 0x7f, 0, 0, 0, 0, 0, 1},
		"version too new": {0, 3, 0x7f, 0, 0, 0, 0, 1, 0, 0},
		"truncated body":  good[:len(good)-3],
	}
	for name, body := range cases {
		if _, err := decode(body); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	fr, err := decode(good)
	if err != nil || fr.client != "c" || fr.corr != 1 {
		t.Fatalf("good frame: %+v %v", fr, err)
	}
}
