package storage

import (
	"errors"
	"log/slog"
	"math"
	"time"
)

// Errors of the log.
var (
	// ErrOffsetOutOfRange means an offset below the log start or past the
	// log end (OFFSET_OUT_OF_RANGE).
	ErrOffsetOutOfRange = errors.New("storage: offset out of range")
	// ErrClosed means the log was closed.
	ErrClosed = errors.New("storage: log closed")
	// ErrCorrupt means data on disk that recovery should have removed: a
	// batch whose framing or offsets do not fit where it was found.
	ErrCorrupt = errors.New("storage: corrupt segment")
)

// Defaults for zero Config fields.
const (
	DefaultSegmentBytes       = 1 << 30
	DefaultIndexIntervalBytes = 4096
	DefaultRetentionMs        = 7 * 24 * 3600 * 1000
	maxSegmentBytes           = math.MaxInt32 // positions in the index are uint32, and Kafka caps segment.bytes at int32
)

// Config tunes one log. Zero fields take the defaults, except SegmentMs.
type Config struct {
	// Dir is the partition directory; Open creates it.
	Dir string
	// SegmentBytes rolls the active segment when an append would take it
	// past this size (default 1 GiB, at most 2 GiB - 1).
	SegmentBytes int64
	// SegmentMs rolls the active segment once it is this old (0 or
	// negative: never). Age counts from the segment's first append.
	SegmentMs int64
	// IndexIntervalBytes is the log bytes between offset index entries
	// (default 4096).
	IndexIntervalBytes int
	// RetentionMs deletes closed segments whose largest timestamp is older
	// than this (default 7 days, negative: keep forever).
	RetentionMs int64
	// RetentionBytes deletes the oldest closed segments while the log is
	// larger than this (default and negative: unlimited).
	RetentionBytes int64
	// CachedTailBytes is how much of the log's end stays in the page
	// cache once written (default DefaultCachedTailBytes; negative: all of
	// it, leaving eviction to the kernel). Older pages are handed back
	// once on disk, and reads of them go to disk (cache.go).
	CachedTailBytes int64
	// Logger receives recovery and retention reports; default discards.
	Logger *slog.Logger
	// Now is the clock for segment age and retention; default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	c.SegmentBytes = min(c.SegmentBytes, maxSegmentBytes)
	if c.IndexIntervalBytes <= 0 {
		c.IndexIntervalBytes = DefaultIndexIntervalBytes
	}
	if c.RetentionMs == 0 {
		c.RetentionMs = DefaultRetentionMs
	}
	if c.RetentionBytes == 0 {
		c.RetentionBytes = -1
	}
	if c.CachedTailBytes == 0 {
		c.CachedTailBytes = DefaultCachedTailBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// UpdateConfig applies changed topic configs (segment.bytes, segment.ms,
// retention.ms, retention.bytes, index.interval.bytes) to the live log.
// Dir, CachedTailBytes, Logger and Now keep their values from Open.
func (l *Log) UpdateConfig(cfg Config) {
	cur := l.cfg.Load()
	cfg.Dir, cfg.CachedTailBytes, cfg.Logger, cfg.Now = cur.Dir, cur.CachedTailBytes, cur.Logger, cur.Now
	cfg = cfg.withDefaults()
	l.cfg.Store(&cfg)
}
