package storage

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/chronik-stream/chronik/dataplane/internal/batch"
)

// copyDir copies the regular files of src into dst.
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		out.Close()
	}
}

// recoveryTemplate is a synced log that stopped uncleanly, to copy.
type recoveryTemplate struct {
	dir string
	cfg Config
	m   model
	end int64
}

func newRecoveryTemplate(t testing.TB) *recoveryTemplate {
	rt := &recoveryTemplate{dir: t.TempDir()}
	rt.cfg = Config{Dir: rt.dir, SegmentBytes: 2500, IndexIntervalBytes: 256, Logger: slog.New(slog.DiscardHandler)}
	l, err := Open(rt.cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		mustAppend(t, l, &rt.m, makeBatch(1+i%3, int64(100+i), 300, fmt.Sprint(i)), int32(1+i/5))
	}
	rt.end = l.LogEndOffset()
	mustSync(t, l, rt.end)
	crash(t, l)
	return rt
}

// check appends tail to one of the active segment's files (target picks
// the log or an index), opens the copy and checks nothing synced was lost.
func (rt *recoveryTemplate) check(t *testing.T, tail []byte, target uint8) {
	dir := t.TempDir()
	copyDir(t, rt.dir, dir)
	seg := lastSegmentPath(t, dir)
	stem := seg[:len(seg)-len(logSuffix)]
	paths := []string{seg, stem + indexSuffix, stem + timeIndexSuffix}
	file, err := os.OpenFile(paths[int(target)%len(paths)], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	file.Write(tail)
	file.Close()

	cfg := rt.cfg
	cfg.Dir = dir
	l, err := Open(cfg)
	if err != nil {
		t.Fatalf("open after %d appended bytes: %v", len(tail), err)
	}
	defer l.Close()
	if l.LogEndOffset() < rt.end {
		t.Fatalf("lost synced data: end %d < %d", l.LogEndOffset(), rt.end)
	}
	got := readAll(t, l)
	want := rt.m.from(0)
	if len(got) < len(want) || !bytes.Equal(got[:len(want)], want) {
		t.Fatal("synced batches changed")
	}
	// Whatever recovery kept beyond them is whole, valid batches.
	extra, rest, err := batch.Split(got[len(want):])
	if err != nil || len(rest) != 0 {
		t.Fatalf("recovered tail: %v, %d partial bytes", err, len(rest))
	}
	for _, b := range extra {
		if err := batch.Validate(b); err != nil {
			t.Fatalf("recovered tail batch: %v", err)
		}
	}
	// The log stays writable where recovery left it.
	first, _, err := l.Append(makeBatch(1, 0, 5, "post"), 9)
	if err != nil || first != l.LogEndOffset()-1 {
		t.Fatalf("append after recovery: %d %v", first, err)
	}
}

// FuzzRecovery appends arbitrary bytes to the active segment of a synced
// log that stopped uncleanly: Open must succeed and keep every synced batch.
func FuzzRecovery(f *testing.F) {
	rt := newRecoveryTemplate(f)
	next := makeBatch(2, 500, 20, "next")
	f.Add(make([]byte, 100), uint8(0))
	f.Add(stored(next, rt.end, 3), uint8(0))                                    // a valid batch in place: kept
	f.Add(stored(next, rt.end+5, 3), uint8(0))                                  // wrong offset: cut
	f.Add(stored(next, rt.end, 3)[:40], uint8(0))                               // torn header
	f.Add(append(stored(next, rt.end, 3), 0xff, 0xff, 0xff), uint8(0))          // valid then junk
	f.Add(bytes.Repeat([]byte{0xff}, 70), uint8(1))                             // junk in the offset index
	f.Add(bytes.Repeat([]byte{0x01}, 24), uint8(2))                             // junk in the time index
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\x00\x0c\x7f\xff\xff\xff"), uint8(0)) // huge length
	f.Fuzz(rt.check)
}
