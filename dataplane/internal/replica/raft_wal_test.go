package replica

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"unsafe"

	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"golang.org/x/sys/unix"
)

// The partition groups' raft-wal segments are large but not preallocated:
// a segment file takes only the disk its entries need, and a log whose
// tail ends in a torn write reopens with every committed entry.
func TestRaftWALSegmentsAreSparse(t *testing.T) {
	dir := t.TempDir()
	const segSize = 64 << 20
	open := func() (*metadb.BoltMetaDB, interface {
		raft.LogStore
		Close() error
	}) {
		meta := &metadb.BoltMetaDB{}
		w, err := openWAL(dir, segSize, newHCLogger(testLogger(t, "")), meta)
		if err != nil {
			t.Fatal(err)
		}
		return meta, w
	}
	meta, w := open()
	var logs []*raft.Log
	for i := uint64(1); i <= 100; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(i)}, 1000)})
	}
	if err := w.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := meta.Close(); err != nil {
		t.Fatal(err)
	}

	segs, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil || len(segs) != 1 {
		t.Fatalf("segment files %v, %v", segs, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(segs[0], &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 1<<20 {
		t.Fatalf("segment with 100 KB of entries uses %d bytes of disk (size %d)", used, st.Size)
	}
	t.Logf("segment %s: size %d, %d bytes on disk", filepath.Base(segs[0]), st.Size, st.Blocks*512)

	// A torn write after the last commit.
	f, err := os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("\x01\x00\x00torn")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	meta, w = open()
	defer func() {
		if err := w.Close(); err != nil {
			t.Error(err)
		}
		if err := meta.Close(); err != nil {
			t.Error(err)
		}
	}()
	last, err := w.LastIndex()
	if err != nil || last != 100 {
		t.Fatalf("last index %d, %v; want 100", last, err)
	}
	for i := uint64(1); i <= 100; i++ {
		var l raft.Log
		if err := w.GetLog(i, &l); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if !bytes.Equal(l.Data, logs[i-1].Data) {
			t.Fatalf("entry %d: data differs", i)
		}
	}
	if err := w.StoreLog(&raft.Log{Index: 101, Term: 2, Type: raft.LogCommand, Data: []byte("after")}); err != nil {
		t.Fatalf("append after reopening: %v", err)
	}
}

// Once raft-wal has synced its entries, their whole pages leave the page
// cache, and the log still reads back every entry, before and after a
// reopen.
func TestRaftWALHandsBackSyncedPages(t *testing.T) {
	dir := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type == unix.TMPFS_MAGIC {
		t.Skipf("%s is tmpfs, whose pages are the file: nothing is handed back", dir)
	}
	meta := &metadb.BoltMetaDB{}
	w, err := openWAL(dir, 64<<20, newHCLogger(testLogger(t, "")), meta)
	if err != nil {
		t.Fatal(err)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 64; i++ {
		l := &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(i)}, 8000)}
		logs = append(logs, l)
		if err := w.StoreLogs([]*raft.Log{l}); err != nil { // one sync each
			t.Fatal(err)
		}
	}
	segs, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil || len(segs) != 1 {
		t.Fatalf("segment files %v, %v", segs, err)
	}
	cached, pages := residentPages(t, segs[0])
	t.Logf("after 64 synced appends: %d of %d pages cached", cached, pages)
	if pages < 100 || cached > 1 { // only the partial page at the end may stay
		t.Fatalf("%d of the segment's %d pages are still cached", cached, pages)
	}

	readAll := func(s raft.LogStore) {
		t.Helper()
		for _, want := range logs {
			var l raft.Log
			if err := s.GetLog(want.Index, &l); err != nil {
				t.Fatalf("entry %d: %v", want.Index, err)
			}
			if !bytes.Equal(l.Data, want.Data) {
				t.Fatalf("entry %d: data differs", want.Index)
			}
		}
	}
	readAll(w)
	if err := errors.Join(w.Close(), meta.Close()); err != nil {
		t.Fatal(err)
	}
	meta = &metadb.BoltMetaDB{}
	w, err = openWAL(dir, 64<<20, newHCLogger(testLogger(t, "")), meta)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := errors.Join(w.Close(), meta.Close()); err != nil {
			t.Error(err)
		}
	}()
	readAll(w)
	if err := w.StoreLog(&raft.Log{Index: 65, Term: 2, Type: raft.LogCommand, Data: []byte("after")}); err != nil {
		t.Fatalf("append after reopening: %v", err)
	}
}

// residentPages reports how many of path's pages are in the page cache.
func residentPages(t *testing.T, path string) (cached, pages int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		t.Fatal(errno)
	}
	for _, v := range vec {
		cached += int(v & 1)
	}
	return cached, len(vec)
}

// recordingStore records the appends it is given.
type recordingStore struct {
	raft.LogStore
	calls [][]uint64
	fail  int // fail the call with this number (1-based); 0: never
}

func (r *recordingStore) StoreLogs(logs []*raft.Log) error {
	var idx []uint64
	for _, l := range logs {
		idx = append(idx, l.Index)
	}
	r.calls = append(r.calls, idx)
	if len(r.calls) == r.fail {
		return errors.New("disk full")
	}
	return nil
}

// A long run of entries reaches raft-wal in appends of at most
// walChunkBytes, in order; an entry larger than that goes alone.
func TestChunkedLogStoreBoundsAppends(t *testing.T) {
	sizes := []int{300 << 10, 300 << 10, 300 << 10, 300 << 10, 3 << 20, 10, 1 << 20, 1}
	var logs []*raft.Log
	for i, n := range sizes {
		logs = append(logs, &raft.Log{Index: uint64(i + 1), Data: make([]byte, n)})
	}
	rec := &recordingStore{}
	if err := (chunkedLogStore{rec}).StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	want := [][]uint64{{1, 2, 3}, {4}, {5}, {6}, {7}, {8}}
	if fmt.Sprint(rec.calls) != fmt.Sprint(want) {
		t.Fatalf("appends %v, want %v", rec.calls, want)
	}

	if (chunkedLogStore{rec}).IsMonotonic() {
		t.Fatal("monotonic over a store that is not")
	}
	if !(chunkedLogStore{openTestWAL(t)}).IsMonotonic() {
		t.Fatal("raft-wal's monotonic log is hidden: Raft would cut it after a snapshot install instead of emptying it")
	}

	rec = &recordingStore{fail: 2}
	if err := (chunkedLogStore{rec}).StoreLogs(logs); err == nil || len(rec.calls) != 2 {
		t.Fatalf("a failed append: %v after %d appends; want the error, after 2", err, len(rec.calls))
	}
}

// openTestWAL opens a raft-wal log in a new directory, closed when the
// test ends.
func openTestWAL(t *testing.T) *raftwal.WAL {
	t.Helper()
	meta := &metadb.BoltMetaDB{}
	w, err := openWAL(t.TempDir(), 1<<20, newHCLogger(testLogger(t, "")), meta)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := errors.Join(w.Close(), meta.Close()); err != nil {
			t.Error(err)
		}
	})
	return w
}

// Raft reads entries back while the segment is being appended to (a leader
// sending to a follower that fell out of the entry cache, a follower
// applying behind its appends). Reads go through the page cache, appends
// around it (O_DIRECT) or, where the file system refuses that, through it
// with synced pages handed back; every entry read back, however close to
// the tail, must hold exactly what was stored.
func TestRaftWALReadsWhileAppending(t *testing.T) {
	dir := t.TempDir()
	meta := &metadb.BoltMetaDB{}
	w, err := openWAL(dir, 8<<20, newHCLogger(testLogger(t, "")), meta)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := errors.Join(w.Close(), meta.Close()); err != nil {
			t.Error(err)
		}
	}()
	data := func(i uint64) []byte {
		// Sizes that leave the tail mid-page, and content tied to the index.
		b := make([]byte, 100+int(i*7919%9000))
		for j := range b {
			b[j] = byte(i) ^ byte(j) | 1
		}
		return b
	}
	const entries = 1000
	var last atomic.Uint64
	errc := make(chan error, 1)
	stop := make(chan struct{}) // closed if the appends fail first
	defer close(stop)
	go func() {
		defer close(errc)
		var l raft.Log
		for reads := 0; ; reads++ {
			n := last.Load()
			select {
			case <-stop:
				return
			default:
			}
			if n == entries {
				t.Logf("%d reads beside the appends", reads)
				return
			}
			if n < 2 {
				runtime.Gosched()
				continue
			}
			for _, idx := range []uint64{n, n - 1} { // the tail, and just before it
				if err := w.GetLog(idx, &l); err != nil {
					errc <- fmt.Errorf("entry %d of %d: %w", idx, n, err)
					return
				}
				if l.Index != idx || !bytes.Equal(l.Data, data(idx)) {
					errc <- fmt.Errorf("entry %d of %d read back as index %d with other data", idx, n, l.Index)
					return
				}
			}
		}
	}()
	for i := uint64(1); i <= entries; i++ {
		if err := w.StoreLogs([]*raft.Log{{Index: i, Term: 1, Type: raft.LogCommand, Data: data(i)}}); err != nil {
			t.Fatal(err)
		}
		last.Store(i)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
