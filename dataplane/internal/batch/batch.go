// Package batch reads and patches Kafka v2 record batches (magic 2) held as
// raw bytes. Nothing here decompresses or decodes records: the broker stores
// and serves batches exactly as producers sent them, so the header is all it
// ever needs to look at.
//
// A v2 batch starts with a fixed 61-byte header:
//
//	baseOffset           int64  @0
//	batchLength          int32  @8   bytes after this field
//	partitionLeaderEpoch int32  @12
//	magic                int8   @16
//	crc                  uint32 @17  CRC-32C over bytes 21..end
//	attributes           int16  @21
//	lastOffsetDelta      int32  @23
//	baseTimestamp        int64  @27
//	maxTimestamp         int64  @35
//	producerId           int64  @43
//	producerEpoch        int16  @51
//	baseSequence         int32  @53
//	recordCount          int32  @57
//
// baseOffset, batchLength and partitionLeaderEpoch sit before the CRC'd
// range, so the broker can rewrite the offset and epoch in place.
package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Byte positions of the header fields.
const (
	offBaseOffset      = 0
	offBatchLength     = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57
)

const (
	// HeaderSize is the size of a v2 batch header, records excluded.
	HeaderSize = 61
	// LogOverhead is the part of a batch not counted by batchLength: the
	// base offset and the length field itself.
	LogOverhead = 12
	// Magic is the only batch format version this package accepts.
	Magic = 2
	// minLegacyLength is the smallest batchLength (message size) a v0/v1
	// message can have; Split uses it to step over legacy message sets.
	minLegacyLength = 14
)

// Attribute bits.
const (
	compressionMask  = 0x07
	timestampTypeBit = 0x08
	transactionalBit = 0x10
	controlBit       = 0x20
	deleteHorizonBit = 0x40
)

// Errors, each mapping to one Kafka error code.
var (
	// ErrTooShort means the bytes end before the batch does (CORRUPT_MESSAGE).
	ErrTooShort = errors.New("batch: too short")
	// ErrCorrupt means the framing or the CRC is wrong (CORRUPT_MESSAGE).
	ErrCorrupt = errors.New("batch: corrupt")
	// ErrUnsupportedMagic means a batch format other than v2
	// (UNSUPPORTED_FOR_MESSAGE_FORMAT).
	ErrUnsupportedMagic = errors.New("batch: unsupported magic")
	// ErrInvalidRecord means a well-formed batch whose counts do not add up
	// (INVALID_RECORD).
	ErrInvalidRecord = errors.New("batch: invalid record")
)

// castagnoli is the CRC-32C table Kafka uses for v2 batches.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Compression is the codec in the low three attribute bits.
type Compression int8

// The codecs Kafka defines.
const (
	CompressionNone   Compression = 0
	CompressionGzip   Compression = 1
	CompressionSnappy Compression = 2
	CompressionLZ4    Compression = 3
	CompressionZstd   Compression = 4
)

// String names the codec as Kafka's compression.type does.
func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionGzip:
		return "gzip"
	case CompressionSnappy:
		return "snappy"
	case CompressionLZ4:
		return "lz4"
	case CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("unknown(%d)", int8(c))
}

// TimestampType says who set the record timestamps.
type TimestampType int8

// The two timestamp types.
const (
	CreateTime    TimestampType = 0
	LogAppendTime TimestampType = 1
)

// Header is a decoded v2 batch header.
type Header struct {
	BaseOffset           int64
	BatchLength          int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	RecordCount          int32
}

// Compression is the batch's codec.
func (h Header) Compression() Compression { return Compression(h.Attributes & compressionMask) }

// TimestampType says whether timestamps are CreateTime or LogAppendTime.
func (h Header) TimestampType() TimestampType {
	if h.Attributes&timestampTypeBit != 0 {
		return LogAppendTime
	}
	return CreateTime
}

// IsTransactional reports whether the batch belongs to a transaction.
func (h Header) IsTransactional() bool { return h.Attributes&transactionalBit != 0 }

// IsControl reports whether the batch holds a control record (commit/abort marker).
func (h Header) IsControl() bool { return h.Attributes&controlBit != 0 }

// HasDeleteHorizon reports whether BaseTimestamp is a compaction delete horizon.
func (h Header) HasDeleteHorizon() bool { return h.Attributes&deleteHorizonBit != 0 }

// LastOffset is the offset of the batch's last record.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset is the offset following the batch.
func (h Header) NextOffset() int64 { return h.LastOffset() + 1 }

// Size is the batch's total size in bytes, header included.
func (h Header) Size() int { return LogOverhead + int(h.BatchLength) }

// ParseHeader decodes the header at the start of b. It checks only what it
// must to read the fields: enough bytes, magic 2 and a batchLength that
// covers the header. It does not check the CRC (Validate does).
func ParseHeader(b []byte) (Header, error) {
	if len(b) <= offMagic {
		return Header{}, fmt.Errorf("%w: %d bytes, header needs %d", ErrTooShort, len(b), HeaderSize)
	}
	if m := int8(b[offMagic]); m != Magic {
		return Header{}, fmt.Errorf("%w: %d", ErrUnsupportedMagic, m)
	}
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, header needs %d", ErrTooShort, len(b), HeaderSize)
	}
	h := Header{
		BaseOffset:           int64(binary.BigEndian.Uint64(b[offBaseOffset:])),
		BatchLength:          int32(binary.BigEndian.Uint32(b[offBatchLength:])),
		PartitionLeaderEpoch: int32(binary.BigEndian.Uint32(b[offLeaderEpoch:])),
		Magic:                int8(b[offMagic]),
		CRC:                  binary.BigEndian.Uint32(b[offCRC:]),
		Attributes:           int16(binary.BigEndian.Uint16(b[offAttributes:])),
		LastOffsetDelta:      int32(binary.BigEndian.Uint32(b[offLastOffsetDelta:])),
		BaseTimestamp:        int64(binary.BigEndian.Uint64(b[offBaseTimestamp:])),
		MaxTimestamp:         int64(binary.BigEndian.Uint64(b[offMaxTimestamp:])),
		ProducerID:           int64(binary.BigEndian.Uint64(b[offProducerID:])),
		ProducerEpoch:        int16(binary.BigEndian.Uint16(b[offProducerEpoch:])),
		BaseSequence:         int32(binary.BigEndian.Uint32(b[offBaseSequence:])),
		RecordCount:          int32(binary.BigEndian.Uint32(b[offRecordCount:])),
	}
	if h.BatchLength < HeaderSize-LogOverhead {
		return Header{}, fmt.Errorf("%w: batch length %d below header size", ErrCorrupt, h.BatchLength)
	}
	return h, nil
}

// Validate checks that b is exactly one well-formed v2 producer batch:
// length fields, magic, CRC-32C, a known compression codec, and a record count
// of at least one that matches lastOffsetDelta (a producer batch has
// lastOffsetDelta == recordCount-1; only compaction leaves gaps).
func Validate(b []byte) error {
	h, err := ParseHeader(b)
	if err != nil {
		return err
	}
	switch size := h.Size(); {
	case len(b) < size:
		return fmt.Errorf("%w: %d bytes, batch length says %d", ErrTooShort, len(b), size)
	case len(b) > size:
		return fmt.Errorf("%w: %d bytes after the batch", ErrCorrupt, len(b)-size)
	}
	if got := Checksum(b); got != h.CRC {
		return fmt.Errorf("%w: crc %08x, computed %08x", ErrCorrupt, h.CRC, got)
	}
	if h.Compression() > CompressionZstd {
		return fmt.Errorf("%w: compression codec %d", ErrInvalidRecord, h.Compression())
	}
	if h.RecordCount < 1 {
		return fmt.Errorf("%w: record count %d", ErrInvalidRecord, h.RecordCount)
	}
	if h.LastOffsetDelta != h.RecordCount-1 {
		return fmt.Errorf("%w: last offset delta %d with %d records", ErrInvalidRecord, h.LastOffsetDelta, h.RecordCount)
	}
	return nil
}

// Checksum computes the CRC-32C of a v2 batch: everything from the
// attributes to the end of b. b must hold at least the header.
func Checksum(b []byte) uint32 {
	if len(b) < offAttributes {
		return 0
	}
	return crc32.Checksum(b[offAttributes:], castagnoli)
}

// SetCRC recomputes and stores the CRC of the batch in b, for code that
// builds or edits batches.
func SetCRC(b []byte) {
	binary.BigEndian.PutUint32(b[offCRC:], Checksum(b))
}

// SetBaseOffset rewrites the base offset in place. The field is outside the
// CRC, so the batch stays valid. b must hold at least the first 8 bytes.
func SetBaseOffset(b []byte, off int64) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(off))
}

// SetPartitionLeaderEpoch rewrites the partition leader epoch in place. The
// field is outside the CRC, so the batch stays valid.
func SetPartitionLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}
