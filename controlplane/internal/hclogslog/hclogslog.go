// Package hclogslog adapts a *slog.Logger to hclog.Logger, the logger
// interface of hashicorp/raft and raft-wal, so their logs land in the
// node's structured log with the caller's attributes.
package hclogslog

import (
	"context"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// Logger is an hclog.Logger writing to a slog.Logger. Level changes made
// through SetLevel only raise the floor below which records are dropped;
// the slog handler still applies its own level.
type Logger struct {
	l       *slog.Logger
	name    string
	implied []any
	level   *atomic.Int32 // an hclog.Level, shared with derived loggers
}

var _ hclog.Logger = (*Logger)(nil)

// New returns an hclog.Logger that writes to l. A nil l discards.
func New(l *slog.Logger) *Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	h := &Logger{l: l, level: new(atomic.Int32)}
	h.level.Store(int32(hclog.Trace))
	return h
}

// slogLevel maps hclog levels onto slog's; Trace becomes a level below
// Debug so that a Debug handler does not drown in raft's trace output.
func slogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// Log implements hclog.Logger.
func (h *Logger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off || (level != hclog.NoLevel && level < h.GetLevel()) {
		return
	}
	sl := slogLevel(level)
	ctx := context.Background()
	if !h.l.Enabled(ctx, sl) {
		return
	}
	h.l.Log(ctx, sl, msg, normalize(args)...)
}

// normalize turns hclog's key/value list into slog attributes: keys must be
// strings, a dangling value gets the key hclog itself uses, and errors are
// rendered as text.
func normalize(args []any) []any {
	out := make([]any, 0, len(args))
	for i := 0; i < len(args); i += 2 {
		if i+1 >= len(args) {
			out = append(out, slog.Any(hclog.MissingKey, args[i]))
			break
		}
		key, ok := args[i].(string)
		if !ok {
			key = slog.AnyValue(args[i]).String()
		}
		v := args[i+1]
		if err, ok := v.(error); ok {
			v = err.Error()
		}
		out = append(out, slog.Any(key, v))
	}
	return out
}

// Trace implements hclog.Logger.
func (h *Logger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }

// Debug implements hclog.Logger.
func (h *Logger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }

// Info implements hclog.Logger.
func (h *Logger) Info(msg string, args ...any) { h.Log(hclog.Info, msg, args...) }

// Warn implements hclog.Logger.
func (h *Logger) Warn(msg string, args ...any) { h.Log(hclog.Warn, msg, args...) }

// Error implements hclog.Logger.
func (h *Logger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *Logger) enabled(level hclog.Level) bool {
	return level >= h.GetLevel() && h.l.Enabled(context.Background(), slogLevel(level))
}

// IsTrace implements hclog.Logger.
func (h *Logger) IsTrace() bool { return h.enabled(hclog.Trace) }

// IsDebug implements hclog.Logger.
func (h *Logger) IsDebug() bool { return h.enabled(hclog.Debug) }

// IsInfo implements hclog.Logger.
func (h *Logger) IsInfo() bool { return h.enabled(hclog.Info) }

// IsWarn implements hclog.Logger.
func (h *Logger) IsWarn() bool { return h.enabled(hclog.Warn) }

// IsError implements hclog.Logger.
func (h *Logger) IsError() bool { return h.enabled(hclog.Error) }

// ImpliedArgs implements hclog.Logger.
func (h *Logger) ImpliedArgs() []any { return h.implied }

// With implements hclog.Logger.
func (h *Logger) With(args ...any) hclog.Logger {
	c := *h
	c.implied = append(append([]any(nil), h.implied...), args...)
	c.l = h.l.With(normalize(args)...)
	return &c
}

// Name implements hclog.Logger.
func (h *Logger) Name() string { return h.name }

// Named implements hclog.Logger: names nest with dots, as in hclog.
func (h *Logger) Named(name string) hclog.Logger {
	if h.name != "" {
		name = h.name + "." + name
	}
	return h.ResetNamed(name)
}

// ResetNamed implements hclog.Logger. The name is recorded as the
// "logger" attribute.
func (h *Logger) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	c.l = h.l.With("logger", name)
	return &c
}

// SetLevel implements hclog.Logger.
func (h *Logger) SetLevel(level hclog.Level) { h.level.Store(int32(level)) }

// GetLevel implements hclog.Logger.
func (h *Logger) GetLevel() hclog.Level { return hclog.Level(h.level.Load()) }

// StandardLogger implements hclog.Logger.
func (h *Logger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

// StandardWriter implements hclog.Logger: each written line becomes one
// record at Info, or at the level its "[LEVEL]" prefix names when
// opts.InferLevels is set.
func (h *Logger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	infer := opts != nil && opts.InferLevels
	return writerFunc(func(p []byte) (int, error) {
		for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
			level, msg := hclog.Info, strings.TrimSpace(line)
			if infer {
				level, msg = inferLevel(msg)
			}
			h.Log(level, msg)
		}
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func inferLevel(line string) (hclog.Level, string) {
	for _, p := range []struct {
		prefix string
		level  hclog.Level
	}{
		{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info},
		{"[WARN]", hclog.Warn}, {"[ERROR]", hclog.Error}, {"[ERR]", hclog.Error},
	} {
		if rest, ok := strings.CutPrefix(line, p.prefix); ok {
			return p.level, strings.TrimSpace(rest)
		}
	}
	return hclog.Info, line
}
