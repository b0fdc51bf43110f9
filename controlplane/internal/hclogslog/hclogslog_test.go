package hclogslog

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestLevelsAttributesAndNames(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))

	l.Debug("hidden", "k", 1)
	if l.IsDebug() || !l.IsInfo() {
		t.Fatalf("IsDebug=%v IsInfo=%v with an Info handler", l.IsDebug(), l.IsInfo())
	}
	l.Named("raft").With("peer", "2").Warn("heartbeat failed", "error", errors.New("boom"), 42, "x", "dangling")
	out := buf.String()
	t.Log(out)
	for _, want := range []string{`level=WARN`, `logger=raft`, `peer=2`, `error=boom`, `42=x`, `EXTRA_VALUE_AT_END=dangling`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "hidden") {
		t.Error("debug record passed an Info handler")
	}

	buf.Reset()
	l.SetLevel(hclog.Error)
	l.Warn("below floor")
	if buf.Len() != 0 || l.GetLevel() != hclog.Error {
		t.Fatalf("SetLevel(Error) did not filter Warn: %q", buf.String())
	}
}

func TestStandardWriterInfersLevels(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)))
	w := l.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true})
	if _, err := w.Write([]byte("[ERR] disk full\n[INFO] fine\n")); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	t.Log(out)
	if !strings.Contains(out, `level=ERROR msg="disk full"`) || !strings.Contains(out, `level=INFO msg=fine`) {
		t.Fatalf("unexpected output %q", out)
	}
}
