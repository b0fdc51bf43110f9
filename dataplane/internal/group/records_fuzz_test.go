package group

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func seedRecords() []kv {
	g := newGroup("g", 0, time.Unix(100, 0))
	g.protocolType, g.protocol, g.generation, g.leader = "consumer", "range", 4, "m1"
	g.members["m1"] = &member{id: "m1", instance: "i1", clientID: "c", host: "/h", sessionTimeout: time.Second,
		rebalanceTimeout: time.Minute, protocols: []Protocol{{"range", consumerMeta("t")}}, assignment: []byte{1, 2}}
	return []kv{
		{offsetKey("g", TopicPartition{"t", 1}), offsetValue(committed{Offset: 5, LeaderEpoch: 2, Metadata: "md", CommitTime: 9})},
		{offsetKey("g", TopicPartition{"t", 2}), offsetValue(committed{Offset: 6, ExpireTime: 10})},
		{offsetKey("g", TopicPartition{"t", 1}), nil},
		{groupKey("g"), g.encodeMetadata()},
		{groupKey("h"), nil},
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	recs := seedRecords()
	b := appendBatch(nil, recs, 1234)
	var got []entry
	next, skipped, err := decodeBatches(b, func(e entry) { got = append(got, e) })
	if err != nil || skipped != 0 || next != int64(len(recs)) || len(got) != len(recs) {
		t.Fatalf("next %d skipped %d err %v entries %d", next, skipped, err, len(got))
	}
	if e := got[0]; !e.isOffset || e.group != "g" || e.tp != (TopicPartition{"t", 1}) || *e.offset != (committed{5, 2, "md", 9, 0}) {
		t.Fatalf("offset entry %+v %+v", e, e.offset)
	}
	if e := got[1]; e.offset.ExpireTime != 10 || e.offset.LeaderEpoch != -1 {
		t.Fatalf("expiring entry %+v", e.offset)
	}
	if e := got[2]; !e.isOffset || e.offset != nil {
		t.Fatalf("tombstone %+v", e)
	}
	if e := got[3]; e.isOffset || e.meta == nil || e.meta.Generation != 4 || len(e.meta.Members) != 1 ||
		*e.meta.Members[0].InstanceID != "i1" || string(e.meta.Members[0].Assignment) != "\x01\x02" {
		t.Fatalf("group entry %+v", e.meta)
	}
	if e := got[4]; e.isOffset || e.meta != nil || e.group != "h" {
		t.Fatalf("group tombstone %+v", e)
	}
	// A flipped bit fails the CRC: the batch is skipped, not trusted.
	b[len(b)-3] ^= 1
	got = nil
	_, skipped, err = decodeBatches(b, func(e entry) { got = append(got, e) })
	if err != nil || skipped != len(recs) || len(got) != 0 {
		t.Fatalf("corrupt batch: skipped %d err %v entries %d", skipped, err, len(got))
	}
}

// FuzzDecodeBatches: no bytes from the log panic the decoder.
func FuzzDecodeBatches(f *testing.F) {
	valid := appendBatch(nil, seedRecords(), 1)
	f.Add(valid)
	f.Add(append(append([]byte(nil), valid...), valid...))
	f.Add(valid[:len(valid)/2])
	f.Add(valid[:12])
	bad := append([]byte(nil), valid...)
	binary.BigEndian.PutUint32(bad[57:], 1000) // NumRecords beyond the body
	f.Add(bad)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		decodeBatches(data, func(entry) {})
	})
}

// FuzzDecodeEntry: no record key or value panics the decoder.
func FuzzDecodeEntry(f *testing.F) {
	for _, r := range seedRecords() {
		f.Add(r.key, r.value)
	}
	f.Add([]byte{0, 2, 0xff, 0xff}, []byte{0, 3, 0, 8, 'c', 'o', 'n', 's', 'u', 'm', 'e', 'r', 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 9}, []byte{1})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		decodeEntry(key, value)
	})
}

// FuzzLoadGarbage: a log holding arbitrary records, in well-framed
// batches, never panics Load, and the coordinator works afterwards.
func FuzzLoadGarbage(f *testing.F) {
	for _, r := range seedRecords() {
		f.Add(r.key, r.value, r.key[:len(r.key)-1])
	}
	meta := kmsg.NewGroupMetadataValue()
	meta.Version = 3
	meta.Members = []kmsg.GroupMetadataValueMember{{MemberID: "x", SessionTimeoutMillis: -5}}
	f.Add(groupKey("g"), meta.AppendTo(nil), []byte{0, 1})
	f.Fuzz(func(t *testing.T, key, value, junk []byte) {
		l := newMemLog()
		ctx := context.Background()
		l.Append(ctx, 0, appendBatch(nil, []kv{{key, value}, {junk, junk}, {key, nil}, {key, value}}, 0))
		c := New(Config{Log: l, NumPartitions: 1, InitialRebalanceDelay: -1, MinSessionTimeout: time.Millisecond})
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(runCtx) }()
		defer func() { cancel(); <-done }()
		if err := c.Load(ctx, 0); err != nil {
			t.Fatalf("load: %v", err)
		}
		c.ExpireOffsets()
		c.fireTimers()
		c.List(nil, nil)
		res := c.Join(ctx, JoinRequest{Group: "fuzz", ClientID: "c", SessionTimeout: time.Second, RebalanceTimeout: time.Second,
			ProtocolType: "consumer", Protocols: []Protocol{{Name: "range"}}})
		if res.ErrorCode != 0 {
			t.Fatalf("join after garbage: %d", res.ErrorCode)
		}
	})
}
