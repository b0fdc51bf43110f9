package storage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chronik-stream/chronik/dataplane/internal/batch"
)

// tornLog writes a synced prefix and an unsynced tail, "crashes", and
// returns the model of the synced prefix and of the whole log.
func tornLog(t *testing.T, cfg Config) (synced, all model) {
	t.Helper()
	l := openLog(t, cfg)
	for i := range 30 {
		b := makeBatch(1+i%4, int64(1000+i), 200, fmt.Sprint(i))
		mustAppend(t, l, &synced, b, 3)
	}
	mustSync(t, l, l.LogEndOffset())
	all = model{batches: append([][]byte(nil), synced.batches...), bases: append([]int64(nil), synced.bases...)}
	for i := range 5 {
		mustAppend(t, l, &all, makeBatch(3, int64(2000+i), 300, "tail"+fmt.Sprint(i)), 4)
	}
	crash(t, l)
	return synced, all
}

func TestRecoverTornTail(t *testing.T) {
	cases := []struct {
		name string
		// damage edits the active segment file; keep is how many of the
		// unsynced tail batches must survive.
		damage func(t *testing.T, path string, tail [][]byte)
		keep   int
	}{
		{"cut mid batch", func(t *testing.T, path string, tail [][]byte) {
			st, _ := os.Stat(path)
			cut := st.Size() - int64(len(tail[4])) - int64(len(tail[3])/2)
			if err := os.Truncate(path, cut); err != nil {
				t.Fatal(err)
			}
		}, 3},
		{"cut mid header", func(t *testing.T, path string, tail [][]byte) {
			st, _ := os.Stat(path)
			if err := os.Truncate(path, st.Size()-int64(len(tail[4]))+20); err != nil {
				t.Fatal(err)
			}
		}, 4},
		{"flipped byte in last batch", func(t *testing.T, path string, tail [][]byte) {
			f, _ := os.OpenFile(path, os.O_RDWR, 0)
			defer f.Close()
			st, _ := f.Stat()
			b := []byte{0}
			f.ReadAt(b, st.Size()-7)
			b[0] ^= 0x40
			f.WriteAt(b, st.Size()-7)
		}, 4},
		{"flipped byte in unsynced middle", func(t *testing.T, path string, tail [][]byte) {
			f, _ := os.OpenFile(path, os.O_RDWR, 0)
			defer f.Close()
			st, _ := f.Stat()
			pos := st.Size() - int64(len(tail[4])+len(tail[3])+len(tail[2])) + 100
			f.WriteAt([]byte{0xee}, pos)
		}, 2},
		{"garbage zeros appended", func(t *testing.T, path string, tail [][]byte) {
			f, _ := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
			defer f.Close()
			f.Write(make([]byte, 4096))
		}, 5},
		{"length field past end", func(t *testing.T, path string, tail [][]byte) {
			f, _ := os.OpenFile(path, os.O_RDWR, 0)
			defer f.Close()
			st, _ := f.Stat()
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], 1<<30)
			f.WriteAt(b[:], st.Size()-int64(len(tail[4]))+8)
		}, 4},
		{"wrong base offset", func(t *testing.T, path string, tail [][]byte) {
			f, _ := os.OpenFile(path, os.O_RDWR, 0)
			defer f.Close()
			st, _ := f.Stat()
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], 5)
			f.WriteAt(b[:], st.Size()-int64(len(tail[4])))
		}, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{Dir: dir, IndexIntervalBytes: 256}
			synced, all := tornLog(t, cfg)
			tail := all.batches[len(synced.batches):]
			c.damage(t, lastSegmentPath(t, dir), tail)

			l := openLog(t, cfg)
			want := all
			h, _ := batch.ParseHeader(tail[c.keep-1])
			end := h.NextOffset()
			want.truncate(end)
			checkLog(t, l, &want)
			checkEveryOffset(t, l, &want)
			if l.DurableOffset() != l.LogEndOffset() {
				t.Fatalf("durable %d after recovery, end %d", l.DurableOffset(), l.LogEndOffset())
			}
			// Offsets continue from the recovered end.
			first, _ := mustAppend(t, l, &want, makeBatch(2, 5000, 50, "after"), 5)
			if first != end+2 {
				t.Fatalf("next append at %d, want %d", first-2, end)
			}
			if e, off := l.OffsetForLeaderEpoch(4); e != 4 || off != end {
				t.Fatalf("epoch 4 after recovery: (%d, %d), want (4, %d)", e, off, end)
			}
			if e, off := l.OffsetForLeaderEpoch(3); e != 3 || off != all.bases[len(synced.bases)] {
				t.Fatalf("epoch 3 after recovery: (%d, %d), want (3, %d)", e, off, all.bases[len(synced.bases)])
			}
			mustSync(t, l, l.LogEndOffset())
			crash(t, l)
			l = openLog(t, cfg)
			checkLog(t, l, &want)
		})
	}
}

func TestRecoverTornMiddleSegment(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 3000}
	l := openLog(t, cfg)
	var m model
	fillLog(t, l, &m, 60, 21)
	segs := segmentCount(l)
	crash(t, l)
	os.Remove(filepath.Join(dir, recoveryPointFile))
	// Damage a batch in the middle of the third segment: a power loss that
	// lost pages of a segment the flusher never synced.
	names, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	third := names[2]
	base, _ := parseSegmentName(filepath.Base(third))
	f, _ := os.OpenFile(third, os.O_RDWR, 0)
	st, _ := f.Stat()
	f.WriteAt([]byte{0xde, 0xad}, st.Size()/2)
	f.Close()

	l = openLog(t, cfg)
	if n := segmentCount(l); n != 3 {
		t.Fatalf("%d of %d segments after a torn third one, want 3", n, segs)
	}
	end := l.LogEndOffset()
	if end < base {
		t.Fatalf("recovered end %d, third segment starts at %d", end, base)
	}
	m.truncate(end)
	checkLog(t, l, &m)
	if _, err := os.Stat(names[3]); !os.IsNotExist(err) {
		t.Fatalf("segment after the torn one survived: %v", err)
	}
}

func TestEpochCheckpointRebuilt(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 1500}
	l := openLog(t, cfg)
	for i, e := range []int32{1, 1, 3, 3, 3, 6, 6} {
		mustAppend(t, l, nil, makeBatch(2, 0, 500, fmt.Sprint(i)), e)
	}
	want := map[int32][2]int64{ // epoch -> (epoch out, end offset)
		-1: {-1, -1}, 0: {0, 0}, 1: {1, 4}, 2: {1, 4}, 3: {3, 10}, 4: {3, 10}, 5: {3, 10}, 6: {6, 14}, 7: {-1, -1},
	}
	check := func(stage string) {
		t.Helper()
		for q, w := range want {
			if e, off := l.OffsetForLeaderEpoch(q); int64(e) != w[0] || off != w[1] {
				t.Fatalf("%s: epoch %d: (%d, %d), want %v", stage, q, e, off, w)
			}
		}
	}
	check("live")
	l.Close()
	b, _ := os.ReadFile(filepath.Join(dir, epochFile))
	if string(b) != "0\n3\n1 0\n3 4\n6 10\n" {
		t.Fatalf("checkpoint %q", b)
	}
	l = openLog(t, cfg)
	check("reopened")
	l.Close()
	os.Remove(filepath.Join(dir, epochFile))
	l = openLog(t, cfg)
	check("rebuilt")
	// DeleteRecords past the first epoch's start moves it.
	if err := l.SetLogStartOffset(6); err != nil {
		t.Fatal(err)
	}
	if e, off := l.OffsetForLeaderEpoch(3); e != 3 || off != 10 {
		t.Fatalf("epoch 3 after delete: %d %d", e, off)
	}
	if e, off := l.OffsetForLeaderEpoch(1); e != 1 || off != 6 {
		t.Fatalf("epoch 1 after delete: (%d, %d), want (1, 6)", e, off)
	}
}

func TestEpochCache(t *testing.T) {
	var c epochCache
	for _, a := range []struct {
		epoch int32
		start int64
		ok    bool
	}{{2, 0, true}, {2, 5, false}, {1, 7, false}, {4, 10, true}, {-1, 11, false}, {5, 10, true}, {7, 20, true}} {
		if got := c.assign(a.epoch, a.start); got != a.ok {
			t.Fatalf("assign(%d, %d) = %v", a.epoch, a.start, got)
		}
	}
	// (4, 10) was replaced by (5, 10): an epoch that wrote nothing.
	if got := fmt.Sprint(c.entries); got != "[{2 0} {5 10} {7 20}]" {
		t.Fatalf("entries %s", got)
	}
	for _, q := range []struct {
		epoch     int32
		wantEpoch int32
		wantEnd   int64
	}{{1, 1, 0}, {2, 2, 10}, {3, 2, 10}, {4, 2, 10}, {5, 5, 20}, {6, 5, 20}, {7, 7, 99}, {8, -1, -1}} {
		if e, end := c.endOffsetFor(q.epoch, 99); e != q.wantEpoch || end != q.wantEnd {
			t.Fatalf("endOffsetFor(%d) = (%d, %d), want (%d, %d)", q.epoch, e, end, q.wantEpoch, q.wantEnd)
		}
	}
	enc := c.encode()
	d, err := decodeEpochCheckpoint(enc)
	if err != nil || fmt.Sprint(d.entries) != fmt.Sprint(c.entries) {
		t.Fatalf("checkpoint round trip: %v %v", d.entries, err)
	}
	for _, bad := range []string{"", "1\n0\n", "0\n2\n1 0\n", "0\n2\n3 0\n2 5\n", "0\n1\nx y\n"} {
		if _, err := decodeEpochCheckpoint([]byte(bad)); err == nil {
			t.Fatalf("accepted checkpoint %q", bad)
		}
	}
	c.truncateFromEnd(20)
	c.truncateFromStart(12)
	if got := fmt.Sprint(c.entries); got != "[{5 12}]" {
		t.Fatalf("after truncation %s", got)
	}
}

const crashDirEnv = "CHRONIK_STORAGE_CRASH_DIR"

// crashValue is the value of batch i in the crash test, so the parent can
// check every recovered batch.
func crashValue(i int) string { return "crash-" + strconv.Itoa(i) }

// TestCrashChild is the child half of TestRecoverAfterSIGKILL: it appends
// and syncs until killed, printing each synced offset.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("runs only as TestRecoverAfterSIGKILL's child")
	}
	// A small cached tail makes the flusher hand pages back while the
	// child is killed, too.
	l, err := Open(Config{Dir: dir, SegmentBytes: 32 << 10, IndexIntervalBytes: 1024, CachedTailBytes: 16 << 10, Logger: testLogger(t)})
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	for i := 0; ; i++ {
		b := makeBatch(1+i%3, int64(i), 400, crashValue(i))
		_, last, err := l.Append(b, 1)
		if err != nil {
			fmt.Println("append failed:", err)
			os.Exit(2)
		}
		if i%4 == 3 { // leave some appends for the next sync
			continue
		}
		if err := l.Sync(ctx, last+1); err != nil {
			fmt.Println("sync failed:", err)
			os.Exit(2)
		}
		fmt.Printf("synced %d %d\n", i, last+1)
	}
}

func TestRecoverAfterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	deadline := time.After(60 * time.Second)
	lastBatch, synced, seen := -1, int64(0), 0
	for seen < 400 {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("child ended early: %v", cmd.Wait())
			}
			var i int
			var upTo int64
			if _, err := fmt.Sscanf(line, "synced %d %d", &i, &upTo); err != nil {
				if strings.Contains(line, "failed") {
					t.Fatalf("child: %s", line)
				}
				continue
			}
			lastBatch, synced, seen = i, upTo, seen+1
		case <-deadline:
			t.Fatalf("child synced only %d times in 60s", seen)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for range lines { // drain until the pipe closes
	}
	werr := cmd.Wait()
	t.Logf("killed child after %d syncs (last synced batch %d, offset %d): %v", seen, lastBatch, synced, werr)

	l := openLog(t, Config{Dir: dir, SegmentBytes: 32 << 10, IndexIntervalBytes: 1024})
	if l.LogEndOffset() < synced {
		t.Fatalf("recovered end %d below synced offset %d", l.LogEndOffset(), synced)
	}
	// Every batch, synced or not, that survived must be intact and in order.
	off, i := int64(0), 0
	for off < l.LogEndOffset() {
		c, err := l.Read(off, 1<<20, l.LogEndOffset())
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		buf := c.Bytes()
		c.Release()
		bs, rest, err := batch.Split(buf)
		if err != nil || len(rest) != 0 {
			t.Fatalf("read %d: split: %v, %d bytes left", off, err, len(rest))
		}
		for _, b := range bs {
			if err := batch.Validate(b); err != nil {
				t.Fatalf("batch %d: %v", i, err)
			}
			want := stored(makeBatch(1+i%3, int64(i), 400, crashValue(i)), off, 1)
			if !bytes.Equal(b, want) {
				t.Fatalf("batch %d at %d differs from what the child wrote", i, off)
			}
			h, _ := batch.ParseHeader(b)
			off, i = h.NextOffset(), i+1
		}
	}
	if i <= lastBatch {
		t.Fatalf("recovered %d batches, child had synced through batch %d", i, lastBatch)
	}
	if n := segmentCount(l); n < 3 {
		t.Fatalf("only %d segments: the crash test should span rolls", n)
	}
}

// TestNewLogDefersItsFsyncs checks that opening a new, empty log fsyncs
// nothing, that the first Sync after an append then makes the segment and
// the directory durable, and that a log crashed before or after that
// reopens with exactly what was synced (no checkpoints exist yet, so the
// recovery scans its one segment).
func TestNewLogDefersItsFsyncs(t *testing.T) {
	cfg := Config{Dir: t.TempDir(), SegmentBytes: 1 << 20, IndexIntervalBytes: 1024}

	l := openLog(t, cfg)
	if n := l.fsyncs.Load(); n != 0 {
		t.Fatalf("opening a new log took %d fsyncs, want 0", n)
	}
	crash(t, l) // nothing appended: reopens empty
	l = openLog(t, cfg)
	if l.LogEndOffset() != 0 || l.LogStartOffset() != 0 {
		t.Fatalf("new log crashed empty reopened at [%d, %d)", l.LogStartOffset(), l.LogEndOffset())
	}

	var m model
	for i := range 5 {
		mustAppend(t, l, &m, makeBatch(2, int64(1000+i), 100, fmt.Sprint(i)), 1)
	}
	before := l.fsyncs.Load()
	mustSync(t, l, l.LogEndOffset())
	// The segment, and the directory that names it.
	if n := l.fsyncs.Load() - before; n < 2 {
		t.Fatalf("first sync of a new log took %d fsyncs, want the segment's and the directory's", n)
	}
	crash(t, l)
	l = openLog(t, cfg)
	checkLog(t, l, &m)
}
