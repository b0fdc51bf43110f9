package replica

import (
	"errors"
	"io"
	"os"
	"sync"
	"unsafe"

	"github.com/hashicorp/raft-wal/types"
	"golang.org/x/sys/unix"
)

// directBlock is the unit of a direct write: its offset, length and memory
// address are multiples of it. 4 KiB covers every logical block size Linux
// disks use (512 B or 4 KiB).
const directBlock = 4096

// directFile writes a raft-wal segment with O_DIRECT, so appends go from
// memory to the disk without passing through the page cache.
//
// A buffered write copies each byte into a page-cache page, and on a
// virtual machine whose free memory goes back to the host a page taken
// afresh costs several times the copy. With three replicas on one host
// that copy of the Raft log took a fifth of the host's CPU under load; a
// direct write costs one copy into an aligned buffer, in user space.
// Nothing is lost by bypassing the cache: Raft reads its log back only
// for a follower further behind than the entry cache, and at start-up.
//
// raft-wal appends at the end of what it has written, so a write starts
// mid-block only at the block the previous write ended in. directFile
// keeps that last partial block and writes it again, whole, ahead of the
// new bytes; the padding after them is zeros, which raft-wal reads as the
// end of the segment. The buffered descriptor still serves raft-wal's
// reads, Sync and Close: the kernel drops any cached page a direct write
// overlaps, so a read never sees stale bytes.
//
// The O_DIRECT descriptor is open only from a write to the Sync that
// follows it: raft-wal keeps every segment's file open until the segment
// is deleted, and a second descriptor for each would double what a
// broker with many partitions holds.
type directFile struct {
	types.WritableFile              // buffered: ReadAt, Sync, Close
	path               string       // to open the O_DIRECT descriptor
	direct             directWriter // open between a write and the next Sync
	refused            bool         // a direct write failed with EINVAL

	tail    [directBlock]byte // the bytes of the block at tailAt, up to tailLen
	tailAt  int64             // -1: nothing kept
	tailLen int
}

// writeDirect returns f writing through O_DIRECT, or f handing back its
// synced pages where the file system refuses O_DIRECT (tmpfs, some
// network file systems).
func writeDirect(f types.WritableFile) types.WritableFile {
	named, ok := f.(interface{ Name() string })
	if !ok {
		return dropSynced(f)
	}
	d := &directFile{WritableFile: f, path: named.Name(), tailAt: -1}
	if err := d.openDirect(); err != nil {
		return dropSynced(f)
	}
	// Opened only to learn that the file system takes O_DIRECT: at
	// start-up every group opens its last segment, most to stay idle.
	if err := d.closeDirect(); err != nil {
		return dropSynced(f)
	}
	return d
}

func (d *directFile) openDirect() error {
	f, err := os.OpenFile(d.path, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		return err
	}
	d.direct = f
	return nil
}

func (d *directFile) closeDirect() error {
	if d.direct == nil {
		return nil
	}
	err := d.direct.Close()
	d.direct = nil
	return err
}

// directWriter is where directFile's aligned writes go.
type directWriter interface {
	io.WriterAt
	io.Closer
}

// WriteAt implements io.WriterAt. raft-wal appends from one goroutine.
func (d *directFile) WriteAt(p []byte, off int64) (int, error) {
	if d.refused {
		return d.WritableFile.WriteAt(p, off)
	}
	if d.direct == nil {
		if err := d.openDirect(); err != nil {
			return 0, err
		}
	}
	start := off &^ (directBlock - 1)
	head := int(off - start)
	size := (head + len(p) + directBlock - 1) &^ (directBlock - 1)
	buf := getDirectBuf(size)
	defer putDirectBuf(buf)
	b := buf.b[:size]
	if head > 0 {
		if d.tailAt == start && d.tailLen >= head {
			copy(b, d.tail[:head])
		} else if err := d.readHead(b[:head], start); err != nil {
			return 0, err
		}
	}
	copy(b[head:], p)
	clear(b[head+len(p):])
	d.tailAt = -1 // until this write is known to have landed
	if _, err := d.direct.WriteAt(b, start); errors.Is(err, unix.EINVAL) {
		// Opened O_DIRECT, but the file system will not write that way
		// (or wants a larger alignment): write through the page cache.
		d.refused = true
		return d.WritableFile.WriteAt(p, off)
	} else if err != nil {
		return 0, err
	}
	end := off + int64(len(p))
	if last := end &^ (directBlock - 1); last < end {
		d.tailAt, d.tailLen = last, copy(d.tail[:], b[last-start:end-start])
	}
	return len(p), nil
}

// readHead reads the bytes of the block at start that come before a write
// starting mid-block: raft-wal reopening its last segment, or writing
// again at an offset whose earlier write failed. Past the end of the file
// they are zeros.
func (d *directFile) readHead(b []byte, start int64) error {
	n, err := d.WritableFile.ReadAt(b, start)
	if errors.Is(err, io.EOF) {
		clear(b[n:])
		return nil
	}
	return err
}

// Sync implements types.WritableFile: the buffered descriptor's fsync
// covers what the direct one wrote, which is then closed until the next
// write.
func (d *directFile) Sync() error {
	return errors.Join(d.WritableFile.Sync(), d.closeDirect())
}

// Close implements io.Closer.
func (d *directFile) Close() error {
	return errors.Join(d.closeDirect(), d.WritableFile.Close())
}

// directBuf is a block-aligned buffer for direct writes.
type directBuf struct {
	mem []byte // as allocated
	b   []byte // the aligned part
}

// directClasses are the sizes of the pooled buffers. Small appends (a few
// records, one partition's share of a request spread over many) take a
// small one, so that a broker with many partitions appending at once does
// not hold a MiB for each; raft-wal's largest appends are walChunkBytes of
// entries, plus framing and a block ahead.
var directClasses = [...]int{64 << 10, walChunkBytes + 64<<10}

var directPools [len(directClasses)]sync.Pool

func init() {
	for i, size := range directClasses {
		directPools[i].New = func() any { return newDirectBuf(size) }
	}
}

func newDirectBuf(size int) *directBuf {
	mem := make([]byte, size+directBlock)
	skip := int(-uintptr(unsafe.Pointer(&mem[0]))) & (directBlock - 1)
	return &directBuf{mem: mem, b: mem[skip : skip+size]}
}

// getDirectBuf returns an aligned buffer of at least size bytes. A size
// beyond the largest class is allocated for the one write, so one large
// entry pins nothing.
func getDirectBuf(size int) *directBuf {
	for i, c := range directClasses {
		if size <= c {
			return directPools[i].Get().(*directBuf)
		}
	}
	return newDirectBuf(size)
}

func putDirectBuf(b *directBuf) {
	for i, c := range directClasses {
		if len(b.b) == c {
			directPools[i].Put(b)
			return
		}
	}
}
