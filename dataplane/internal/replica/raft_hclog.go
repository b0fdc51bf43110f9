package replica

import (
	"context"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// hclogger hands hashicorp/raft's and raft-wal's logs to slog. A broker
// runs a group per partition and a peer going down makes every group
// complain, so raft's lines go out one level lower: Info at Debug, Warn
// ("heartbeat timeout reached") at Info, Error ("failed to appendEntries")
// at Warn. This package logs leadership changes and its own failures
// itself.
type hclogger struct {
	l    *slog.Logger
	name string
	args []any
}

var _ hclog.Logger = (*hclogger)(nil)

func newHCLogger(l *slog.Logger) hclog.Logger { return &hclogger{l: l} }

func (h *hclogger) level(lv hclog.Level) slog.Level {
	switch {
	case lv >= hclog.Error:
		return slog.LevelWarn
	case lv == hclog.Warn:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}

func (h *hclogger) Log(lv hclog.Level, msg string, args ...any) {
	sl := h.level(lv)
	if !h.l.Enabled(context.Background(), sl) {
		return
	}
	if h.name != "" {
		args = append(args, "logger", h.name)
	}
	h.l.Log(context.Background(), sl, msg, args...)
}

func (h *hclogger) Trace(msg string, args ...any) {}
func (h *hclogger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hclogger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hclogger) IsTrace() bool { return false }
func (h *hclogger) IsDebug() bool { return h.l.Enabled(context.Background(), slog.LevelDebug) }
func (h *hclogger) IsInfo() bool  { return h.IsDebug() }
func (h *hclogger) IsWarn() bool  { return h.l.Enabled(context.Background(), slog.LevelInfo) }
func (h *hclogger) IsError() bool { return h.l.Enabled(context.Background(), slog.LevelWarn) }

func (h *hclogger) ImpliedArgs() []any { return h.args }

func (h *hclogger) With(args ...any) hclog.Logger {
	return &hclogger{l: h.l.With(args...), name: h.name, args: append(append([]any(nil), h.args...), args...)}
}

func (h *hclogger) Name() string { return h.name }

func (h *hclogger) Named(name string) hclog.Logger {
	n := name
	if h.name != "" {
		n = h.name + "." + name
	}
	return &hclogger{l: h.l, name: n, args: h.args}
}

func (h *hclogger) ResetNamed(name string) hclog.Logger {
	return &hclogger{l: h.l, name: name, args: h.args}
}

func (h *hclogger) SetLevel(hclog.Level) {}

func (h *hclogger) GetLevel() hclog.Level {
	if h.IsDebug() {
		return hclog.Debug
	}
	return hclog.Warn
}

func (h *hclogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(h.l.Handler(), slog.LevelDebug)
}

func (h *hclogger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	return h.StandardLogger(opts).Writer()
}
