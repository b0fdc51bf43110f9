//go:build e2e && linux

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sys/unix"

	"github.com/chronik-stream/chronik/tests/framework"
)

// TestReadsBehindTheCachedTail runs a server that keeps only the last MiB
// of each partition in the page cache, writes 12 MiB, checks that the
// server handed back the pages behind that tail, and reads every record
// back from the start with franz-go and kcat: most of it now from disk.
func TestReadsBehindTheCachedTail(t *testing.T) {
	srv := framework.StartStandalone(t, "CHRONIK_CACHED_TAIL_MB=1")
	ctx := ctxT(t, 90*time.Second)
	adm := kadm.NewClient(client(t, srv.Addr()))
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "tail"); err != nil {
		t.Fatal(err)
	}
	const n, size = 3000, 4 << 10
	pr := client(t, srv.Addr(), kgo.DefaultProduceTopic("tail"), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	var want [][]byte
	for i := range n {
		v := fmt.Appendf(nil, "%06d/%x", i, randomBytes(size/2)) // printable, for kcat
		want = append(want, v)
		pr.Produce(ctx, &kgo.Record{Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := pr.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	seg := filepath.Join(srv.DataDir, "topics", "tail-0", "00000000000000000000.log")
	framework.Eventually(t, 20*time.Second, "the segment's first 8 MiB handed back to the kernel", func() bool {
		return cachedPages(t, seg, 8<<20) == 0
	})

	got := consumeN(t, srv.Addr(), "tail", n)
	for i, r := range got {
		if r.Offset != int64(i) || !bytes.Equal(r.Value, want[i]) {
			t.Fatalf("record %d: offset %d, content differs: %v", i, r.Offset, !bytes.Equal(r.Value, want[i]))
		}
	}

	needTool(t, "kcat", "-V")
	out := run(t, ctx, "", "kcat", "-b", srv.Addr(), "-C", "-t", "tail", "-o", "beginning", "-e", "-q", "-f", "%s\n")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("kcat read %d records, want %d", len(lines), n)
	}
	for i, l := range lines {
		if l != string(want[i]) {
			t.Fatalf("kcat record %d differs", i)
		}
	}
}

// cachedPages counts the pages of the file's first upTo bytes that are in
// the page cache.
func cachedPages(t *testing.T, path string, upTo int64) int {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() < upTo {
		t.Fatalf("%s is %d bytes, want at least %d", path, st.Size(), upTo)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(upTo), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	page := int64(os.Getpagesize())
	vec := make([]byte, (upTo+page-1)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}
