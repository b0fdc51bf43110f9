package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// MachineLimits are the machine's own ceilings, measured in the same run as
// the targets, on the same disk as their data directories.
type MachineLimits struct {
	DataDir      string         `json:"data_dir"`
	FSType       string         `json:"fs_type"`
	Fsync        LatencySummary `json:"fsync_4k"`             // write 4 KiB + fdatasync
	SeqMBps      float64        `json:"seq_write_mbps"`       // 1 MiB writes, fdatasync every SyncEvery
	SeqSyncEvery int64          `json:"seq_write_sync_every"` // bytes
	SeqBytes     int64          `json:"seq_write_bytes"`      // bytes written
	// Page-cache writes without fsync, 1 MiB at a time: into pages the
	// file does not have yet (what a log append costs the CPU), and over
	// the same range again, now cached.
	PageNewMBps    float64  `json:"page_cache_new_mbps"`
	PageCachedMBps float64  `json:"page_cache_cached_mbps"`
	LoopbackMBps   float64  `json:"loopback_tcp_mbps"` // one Go sender, one receiver
	LoopbackBytes  int64    `json:"loopback_tcp_bytes"`
	Errors         []string `json:"errors,omitempty"`
}

// measureMachine runs the limit probes in dir; a failing probe leaves
// its figure zero and adds an error.
func measureMachine(ctx context.Context, dir string, p Plan) MachineLimits {
	m := MachineLimits{DataDir: dir, FSType: fsType(dir), SeqSyncEvery: p.SeqSyncEvery}
	var err error
	// First: the pages the later probes free would otherwise come back
	// warm to this one.
	if m.PageNewMBps, m.PageCachedMBps, err = pageCacheWrite(ctx, dir, p.SeqBytes, p.SeqFor); err != nil {
		m.Errors = append(m.Errors, err.Error())
	}
	if m.Fsync, err = fsyncLatency(ctx, dir, p.FsyncOps, p.FsyncFor); err != nil {
		m.Errors = append(m.Errors, err.Error())
	}
	if m.SeqMBps, m.SeqBytes, err = seqWrite(ctx, dir, p.SeqBytes, p.SeqSyncEvery, p.SeqFor); err != nil {
		m.Errors = append(m.Errors, err.Error())
	}
	if m.LoopbackMBps, m.LoopbackBytes, err = loopback(ctx, p.NetBytes, p.NetFor); err != nil {
		m.Errors = append(m.Errors, err.Error())
	}
	return m
}

// fsyncLatency appends 4 KiB and fdatasyncs, ops times or until maxDur.
func fsyncLatency(ctx context.Context, dir string, ops int, maxDur time.Duration) (LatencySummary, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-*")
	if err != nil {
		return LatencySummary{}, fmt.Errorf("fsync probe: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	rand.Read(buf)
	samples := make([]time.Duration, 0, ops)
	deadline := time.Now().Add(maxDur)
	for i := 0; i < ops && time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		start := time.Now()
		if _, err := f.Write(buf); err != nil {
			return LatencySummary{}, fmt.Errorf("fsync probe: write: %w", err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return LatencySummary{}, fmt.Errorf("fsync probe: fdatasync: %w", err)
		}
		samples = append(samples, time.Since(start))
	}
	if len(samples) == 0 {
		return LatencySummary{}, fmt.Errorf("fsync probe: no samples: %w", context.Cause(ctx))
	}
	return summarize(samples), nil
}

// seqWrite writes 1 MiB blocks like a log, fdatasync every syncEvery bytes
// and at the end, until total bytes or maxDur.
func seqWrite(ctx context.Context, dir string, total, syncEvery int64, maxDur time.Duration) (float64, int64, error) {
	f, err := os.CreateTemp(dir, "seq-probe-*")
	if err != nil {
		return 0, 0, fmt.Errorf("sequential write probe: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, 1<<20)
	rand.Read(block)
	var written, unsynced int64
	start := time.Now()
	deadline := start.Add(maxDur)
	for written < total && time.Now().Before(deadline) && ctx.Err() == nil {
		n, err := f.Write(block)
		if err != nil {
			return 0, written, fmt.Errorf("sequential write probe: write: %w", err)
		}
		written += int64(n)
		if unsynced += int64(n); unsynced >= syncEvery {
			if err := syscall.Fdatasync(int(f.Fd())); err != nil {
				return 0, written, fmt.Errorf("sequential write probe: fdatasync: %w", err)
			}
			unsynced = 0
		}
	}
	if err := syscall.Fdatasync(int(f.Fd())); err != nil {
		return 0, written, fmt.Errorf("sequential write probe: fdatasync: %w", err)
	}
	return mbps(written, time.Since(start)), written, nil
}

// pageCacheWrite writes a new file in 1 MiB blocks without fsync, until
// total bytes or maxDur, then writes the same range again: the first pass
// pays for new page-cache pages, the second only for the copy. On a
// virtual machine that hands freed memory back to its host the first can
// be several times slower than the second, and it is what every appended
// byte costs a broker's CPU.
func pageCacheWrite(ctx context.Context, dir string, total int64, maxDur time.Duration) (newMBps, cachedMBps float64, err error) {
	f, err := os.CreateTemp(dir, "pagecache-probe-*")
	if err != nil {
		return 0, 0, fmt.Errorf("page cache probe: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, 1<<20)
	rand.Read(block)
	pass := func(limit int64) (int64, time.Duration, error) {
		var written int64
		start := time.Now()
		deadline := start.Add(maxDur)
		for written < limit && time.Now().Before(deadline) && ctx.Err() == nil {
			n, err := f.WriteAt(block, written)
			written += int64(n)
			if err != nil {
				return written, 0, fmt.Errorf("page cache probe: write: %w", err)
			}
		}
		return written, time.Since(start), nil
	}
	n, took, err := pass(total)
	if err != nil || n == 0 {
		return 0, 0, err
	}
	n2, took2, err := pass(n)
	if err != nil {
		return 0, 0, err
	}
	return mbps(n, took), mbps(n2, took2), nil
}

// loopback pushes bytes through one TCP connection on 127.0.0.1 until total
// bytes or maxDur, and reports what the receiver got.
func loopback(ctx context.Context, total int64, maxDur time.Duration) (float64, int64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, fmt.Errorf("loopback probe: %w", err)
	}
	defer ln.Close()
	type result struct {
		n       int64
		elapsed time.Duration
		err     error
	}
	got := make(chan result, 1)
	go func() { // owned here: joined by the receive from got below
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		start := time.Now()
		n, err := io.Copy(io.Discard, c)
		got <- result{n, time.Since(start), err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		ln.Close()
		<-got
		return 0, 0, fmt.Errorf("loopback probe: dial: %w", err)
	}
	buf := make([]byte, 256<<10)
	deadline := time.Now().Add(maxDur)
	var sent int64
	var werr error
	for sent < total && time.Now().Before(deadline) && ctx.Err() == nil {
		n, err := c.Write(buf)
		sent += int64(n)
		if err != nil {
			werr = err
			break
		}
	}
	c.Close()
	r := <-got
	if werr != nil {
		return 0, r.n, fmt.Errorf("loopback probe: write: %w", werr)
	}
	if r.err != nil {
		return 0, r.n, fmt.Errorf("loopback probe: read: %w", r.err)
	}
	return mbps(r.n, r.elapsed), r.n, nil
}

// fsType names the filesystem under dir, as far as statfs tells.
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	switch uint64(st.Type) {
	case 0x01021994:
		return "tmpfs"
	case 0xEF53:
		return "ext4"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x794c7630:
		return "overlayfs"
	case 0x2fc12fc1:
		return "zfs"
	}
	return fmt.Sprintf("0x%x", uint64(st.Type))
}

// mkScratch makes a fresh scratch directory below root.
func mkScratch(root, pattern string) (string, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("scratch dir: %w", err)
	}
	dir, err := os.MkdirTemp(root, pattern)
	if err != nil {
		return "", fmt.Errorf("scratch dir: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("scratch dir: %w", err)
	}
	return abs, nil
}
