package replica

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/types"
	"golang.org/x/sys/unix"
)

// A segment written with O_DIRECT holds exactly what buffered writes would
// have left: appends of every size, from mid-block and block-aligned
// offsets, a write again at the offset of the previous one (raft-wal's
// retry after a failed write), and appends after a reopen, whose first
// block the writer has to read back. Reads through the file see each
// write at once, and the end of the file reads as zeros.
func TestDirectFileWritesWhatBufferedWould(t *testing.T) {
	dir := t.TempDir()
	vfs := sparseFS{fs.New()}
	f, err := vfs.Create(dir, "seg", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(*directFile); !ok {
		f.Close()
		t.Skipf("the file system of %s refuses O_DIRECT; raft-wal writes through the page cache there", dir)
	}
	if n := openDescriptors(t, filepath.Join(dir, "seg")); n != 1 {
		t.Fatalf("a new segment is open %d times before its first write, want once", n)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var want []byte // what the segment must hold
	var off, prev, furthest int64
	check := func(f types.WritableFile, step string) {
		t.Helper()
		got := make([]byte, len(want))
		if _, err := f.ReadAt(got, 0); err != nil {
			t.Fatalf("%s: read back: %v", step, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: the file differs from what was written", step)
		}
		disk, err := os.ReadFile(filepath.Join(dir, "seg"))
		if err != nil {
			t.Fatal(err)
		}
		if len(disk)%directBlock != 0 || !bytes.Equal(disk[:len(want)], want) || bytes.ContainsFunc(disk[furthest:], func(r rune) bool { return r != 0 }) {
			t.Fatalf("%s: the file is %d bytes, not the %d written and zeros to a block's end", step, len(disk), len(want))
		}
	}
	write := func(f types.WritableFile, size int, again bool) {
		t.Helper()
		if again {
			off = prev
		}
		p := make([]byte, size)
		for i := range p {
			p[i] = byte(rng.IntN(255) + 1)
		}
		if n, err := f.WriteAt(p, off); err != nil || n != size {
			t.Fatalf("write %d bytes at %d: %d, %v", size, off, n, err)
		}
		want = append(want[:off], p...)
		prev, off = off, off+int64(size)
		furthest = max(furthest, off)
	}

	sizes := []int{8, 40, directBlock - 48, directBlock, 3*directBlock + 17, directClasses[0] - 10, directClasses[0] + 10,
		directClasses[len(directClasses)-1] + 5000, 100 << 10, 1}
	for i, size := range sizes {
		write(f, size, false)
		check(f, "append")
		if i%3 == 1 {
			write(f, size/2+1, true)
			check(f, "write again")
		}
	}
	for range 50 {
		write(f, rng.IntN(300<<10)+1, rng.IntN(5) == 0)
	}
	check(f, "random appends")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if n := openDescriptors(t, filepath.Join(dir, "seg")); n != 1 {
		t.Fatalf("after Sync the segment is open %d times, want once: raft-wal keeps every segment open", n)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	f, err = vfs.OpenWriter(dir, "seg")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if off%directBlock == 0 {
		t.Fatalf("the reopened segment ends on a block boundary (%d): the read-back is not tested", off)
	}
	write(f, 100, false)
	check(f, "append after reopening")
	write(f, 2*directBlock, false)
	check(f, "second append after reopening")
}

// einvalWriter refuses every write as a file system that accepts O_DIRECT
// at open but not at write would.
type einvalWriter struct{}

func (einvalWriter) WriteAt([]byte, int64) (int, error) { return 0, unix.EINVAL }
func (einvalWriter) Close() error                       { return nil }

// When the file system refuses a direct write, the segment is written
// through the page cache from then on, and nothing is lost.
func TestDirectFileFallsBackWhenRefused(t *testing.T) {
	dir := t.TempDir()
	f, err := fs.New().Create(dir, "seg", 0)
	if err != nil {
		t.Fatal(err)
	}
	d := &directFile{WritableFile: f, direct: einvalWriter{}, tailAt: -1}
	defer d.Close()
	want := []byte("first append, then a second one")
	for _, part := range [][]byte{want[:13], want[13:]} {
		off := int64(bytes.Index(want, part))
		if n, err := d.WriteAt(part, off); err != nil || n != len(part) {
			t.Fatalf("write at %d: %d, %v", off, n, err)
		}
	}
	if !d.refused {
		t.Fatal("the refused direct write was not noticed")
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "seg"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("segment holds %q, %v; want %q", got, err, want)
	}
}

// openDescriptors counts this process's descriptors open on path.
func openDescriptors(t *testing.T, path string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && target == path {
			n++
		}
	}
	return n
}
