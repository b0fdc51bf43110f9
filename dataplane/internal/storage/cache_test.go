//go:build linux

package storage

import (
	"fmt"
	"os"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resident reports, page by page, whether the file at path is in the page
// cache.
func resident(t *testing.T, path string) []bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		t.Fatalf("stat %s: size %d, %v", path, st.Size(), err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (st.Size()+pageSize-1)/pageSize)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	out := make([]bool, len(vec))
	for i, v := range vec {
		out[i] = v&1 != 0
	}
	return out
}

// cachedPages counts the resident pages of path in [from, to).
func cachedPages(t *testing.T, path string, from, to int64) int {
	n := 0
	for i, in := range resident(t, path) {
		if p := int64(i) * pageSize; p >= from && p+pageSize <= to && in {
			n++
		}
	}
	return n
}

// TestPageCacheTail checks that the log hands back the page cache of what
// lies more than CachedTailBytes behind its end, keeps the tail cached, and
// still reads everything back, after a truncation and after a crash.
func TestPageCacheTail(t *testing.T) {
	const keep = 1 << 20
	dir := t.TempDir()
	l := openLog(t, Config{Dir: dir, SegmentBytes: 4 << 20, CachedTailBytes: keep})
	var m model
	for i := range 40 { // about 10 MiB: three segments, the last over keep
		mustAppend(t, l, &m, makeBatch(1, int64(i), 256<<10, fmt.Sprint("c", i)), 0)
	}
	l.mu.RLock()
	segs := make([]string, len(l.segs))
	for i, s := range l.segs {
		segs[i] = s.path + logSuffix
	}
	activeSize := l.segs[len(l.segs)-1].size
	l.mu.RUnlock()
	if len(segs) != 3 || activeSize < keep {
		t.Fatalf("%d segments, active one %d bytes: the test's sizes are off", len(segs), activeSize)
	}
	cut := (activeSize - keep) / pageSize * pageSize
	released := func() string {
		for _, p := range segs[:2] {
			if n := cachedPages(t, p, 0, 1<<30); n > 0 {
				return fmt.Sprintf("%s has %d pages cached", p, n)
			}
		}
		if n := cachedPages(t, segs[2], 0, cut); n > 0 {
			return fmt.Sprintf("active segment has %d pages cached below %d", n, cut)
		}
		return ""
	}
	deadline := time.Now().Add(10 * time.Second)
	for msg := released(); msg != ""; msg = released() {
		if time.Now().After(deadline) {
			t.Fatalf("pages behind the tail still cached after 10s: %s", msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n, all := cachedPages(t, segs[2], cut+pageSize, activeSize), int((activeSize-cut)/pageSize)-2; n < all {
		t.Fatalf("only %d of the tail's %d whole pages are cached", n, all)
	}
	checkLog(t, l, &m) // the released part now comes from disk

	// Cut the log back into the released part and write on: the
	// releaser must follow the active segment back.
	h := l.LogEndOffset()
	if err := l.TruncateTo(h - 20); err != nil {
		t.Fatal(err)
	}
	m.truncate(h - 20)
	for i := range 20 {
		mustAppend(t, l, &m, makeBatch(1, int64(100+i), 256<<10, fmt.Sprint("d", i)), 1)
	}
	checkLog(t, l, &m)

	crash(t, l)
	l2 := openLog(t, Config{Dir: dir, SegmentBytes: 4 << 20, CachedTailBytes: keep})
	checkLog(t, l2, &m)
}

// TestReleaseStep checks when Append wakes the releaser: every quarter of
// the tail, and never when the log keeps everything.
func TestReleaseStep(t *testing.T) {
	for _, c := range []struct{ keep, want int64 }{
		{-1, 0},
		{64 << 20, 16 << 20},
		{1, pageSize},
	} {
		if got := releaseStep(&Config{CachedTailBytes: c.keep}); got != c.want {
			t.Errorf("releaseStep(%d) = %d, want %d", c.keep, got, c.want)
		}
	}
}
