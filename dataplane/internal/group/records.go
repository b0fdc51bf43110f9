package group

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The offsets log uses Kafka's own __consumer_offsets record formats, so
// that its records read the same as Kafka's: keys of version 0 and 1 are
// OffsetCommitKey, version 2 is GroupMetadataKey; a nil value is a
// tombstone.
const (
	offsetKeyVersion = 1
	groupKeyVersion  = 2
	// offsetValueVersion carries the leader epoch; offsetValueExpiring
	// carries an explicit expire timestamp (OffsetCommit v2-v4 retention)
	// and no epoch, as Kafka writes it.
	offsetValueVersion  = 3
	offsetValueExpiring = 1
	groupValueVersion   = 3

	batchHeaderSize = 61 // a v2 record batch header, up to its records
	maxString       = math.MaxInt16
)

// errCorrupt is returned for log bytes that cannot be framed.
var errCorrupt = errors.New("group: corrupt offsets log batch")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// committed is one committed offset as the log stores it.
type committed struct {
	Offset      int64
	LeaderEpoch int32
	Metadata    string
	CommitTime  int64 // unix milliseconds
	ExpireTime  int64 // unix milliseconds, 0 when retention decides
}

// kv is one record of the offsets log; a nil value is a tombstone.
type kv struct {
	key, value []byte
}

func (r kv) size() int { return len(r.key) + len(r.value) + 24 }

// entry is one decoded record of the offsets log.
type entry struct {
	group string
	// isOffset tells an offset record (tp, offset) from a group metadata
	// record (meta).
	isOffset bool
	tp       TopicPartition
	offset   *committed               // nil: tombstone
	meta     *kmsg.GroupMetadataValue // nil: tombstone
	raw      []byte                   // the encoded group metadata value
}

func offsetKey(group string, tp TopicPartition) []byte {
	k := kmsg.OffsetCommitKey{Version: offsetKeyVersion, Group: group, Topic: tp.Topic, Partition: tp.Partition}
	return k.AppendTo(nil)
}

func offsetValue(c committed) []byte {
	v := kmsg.NewOffsetCommitValue()
	v.Version = offsetValueVersion
	if c.ExpireTime != 0 {
		v.Version = offsetValueExpiring
		v.ExpireTimestamp = c.ExpireTime
	}
	v.Offset, v.LeaderEpoch, v.Metadata, v.CommitTimestamp = c.Offset, c.LeaderEpoch, c.Metadata, c.CommitTime
	return v.AppendTo(nil)
}

func groupKey(group string) []byte {
	k := kmsg.GroupMetadataKey{Version: groupKeyVersion, Group: group}
	return k.AppendTo(nil)
}

// decodeEntry decodes one record. ok is false for records of a kind this
// coordinator does not know (other key versions), which replay skips.
func decodeEntry(key, value []byte) (e entry, ok bool, err error) {
	if len(key) < 2 {
		return e, false, fmt.Errorf("%w: key of %d bytes", errCorrupt, len(key))
	}
	switch v := int16(binary.BigEndian.Uint16(key)); v {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(key); err != nil {
			return e, false, fmt.Errorf("decode offset key: %w", err)
		}
		e = entry{group: k.Group, isOffset: true, tp: TopicPartition{k.Topic, k.Partition}}
		if value == nil {
			return e, true, nil
		}
		var val kmsg.OffsetCommitValue
		if err := val.ReadFrom(value); err != nil {
			return e, false, fmt.Errorf("decode offset of %s %s/%d: %w", k.Group, k.Topic, k.Partition, err)
		}
		c := committed{Offset: val.Offset, LeaderEpoch: -1, Metadata: val.Metadata, CommitTime: val.CommitTimestamp}
		if val.Version >= 3 {
			c.LeaderEpoch = val.LeaderEpoch
		}
		if val.Version == 1 {
			c.ExpireTime = val.ExpireTimestamp
		}
		e.offset = &c
		return e, true, nil
	case 2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(key); err != nil {
			return e, false, fmt.Errorf("decode group key: %w", err)
		}
		e = entry{group: k.Group}
		if value == nil {
			return e, true, nil
		}
		var val kmsg.GroupMetadataValue
		if err := val.ReadFrom(value); err != nil {
			return e, false, fmt.Errorf("decode metadata of group %s: %w", k.Group, err)
		}
		e.meta, e.raw = &val, value
		return e, true, nil
	default:
		return e, false, nil
	}
}

// appendBatch encodes records as one uncompressed v2 record batch with base
// offset 0 (the log assigns offsets), no producer id, and a valid CRC.
func appendBatch(dst []byte, recs []kv, nowMs int64) []byte {
	start := len(dst)
	var body []byte
	for i, r := range recs {
		rec := kmsg.Record{OffsetDelta: int32(i), Key: r.key, Value: r.value}
		enc := rec.AppendTo(nil)
		// Record.Length counts what follows the length itself.
		rec.Length = int32(len(enc) - 1)
		body = rec.AppendTo(body)
	}
	b := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                2,
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       nowMs,
		MaxTimestamp:         nowMs,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           int32(len(recs)),
		Records:              body,
	}
	dst = b.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start+8:], uint32(len(dst)-start-12))
	binary.BigEndian.PutUint32(dst[start+17:], crc32.Checksum(dst[start+21:], crcTable))
	return dst
}

// decodeBatches walks whole record batches and hands every record it can
// decode to fn. It returns the offset after the last batch it framed, and
// how many records it skipped as undecodable. Compressed and control
// batches are skipped whole: this coordinator never writes them. An error
// means the bytes could not be framed at all.
func decodeBatches(data []byte, fn func(entry)) (next int64, skipped int, err error) {
	next = -1
	for len(data) > 0 {
		if len(data) < 12 {
			break // a partial batch at the end of a read
		}
		length := int32(binary.BigEndian.Uint32(data[8:]))
		if length < batchHeaderSize-12 {
			return next, skipped, fmt.Errorf("%w: batch length %d", errCorrupt, length)
		}
		if int64(len(data)) < 12+int64(length) {
			break
		}
		raw := data[:12+length]
		data = data[12+length:]
		var b kmsg.RecordBatch
		if err := b.ReadFrom(raw); err != nil {
			return next, skipped, fmt.Errorf("%w: %v", errCorrupt, err)
		}
		if b.LastOffsetDelta < 0 {
			return next, skipped, fmt.Errorf("%w: last offset delta %d", errCorrupt, b.LastOffsetDelta)
		}
		next = b.FirstOffset + int64(b.LastOffsetDelta) + 1
		if b.Magic != 2 || uint32(b.CRC) != crc32.Checksum(raw[21:], crcTable) || b.Attributes&0x27 != 0 {
			skipped += max(int(b.NumRecords), 1)
			continue
		}
		skipped += decodeRecords(b.Records, b.NumRecords, fn)
	}
	return next, skipped, nil
}

// decodeRecords decodes n length-prefixed records and reports how many it
// could not decode.
func decodeRecords(body []byte, n int32, fn func(entry)) (skipped int) {
	for i := int32(0); i < n; i++ {
		length, w := binary.Varint(body)
		if w <= 0 || length < 0 || int64(len(body)-w) < length {
			return int(n - i)
		}
		var rec kmsg.Record
		err := rec.ReadFrom(body[:w+int(length)])
		body = body[w+int(length):]
		if err != nil || rec.Key == nil {
			skipped++
			continue
		}
		e, ok, err := decodeEntry(rec.Key, rec.Value)
		if err != nil {
			skipped++
			continue
		}
		if ok {
			fn(e)
		}
	}
	return skipped
}
