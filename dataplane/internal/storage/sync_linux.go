package storage

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// fdatasync flushes a file's data and the metadata needed to read it back
// (its size), skipping timestamps.
func fdatasync(f *os.File) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := sc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}

// startWriteback asks the kernel to begin writing n bytes of f at off to
// disk without waiting, so that a later fdatasync finds less to do. It is
// only a hint: errors are left for fdatasync to report.
func startWriteback(f *os.File, off, n int64) {
	sc, err := f.SyscallConn()
	if err != nil {
		return
	}
	sc.Control(func(fd uintptr) {
		syscall.SyncFileRange(int(fd), off, n, _SYNC_FILE_RANGE_WRITE)
	})
}

// _SYNC_FILE_RANGE_WRITE is SYNC_FILE_RANGE_WRITE of sync_file_range(2).
const _SYNC_FILE_RANGE_WRITE = 2

// releasePages writes n bytes of f at off to disk and hands their pages
// back to the kernel. Both steps are advice as far as the data goes: the
// kernel drops only clean pages, and a failed write is left for fdatasync
// to report.
func releasePages(f *os.File, off, n int64) {
	if n <= 0 {
		return
	}
	sc, err := f.SyscallConn()
	if err != nil {
		return
	}
	sc.Control(func(fd uintptr) {
		const wait = unix.SYNC_FILE_RANGE_WAIT_BEFORE | unix.SYNC_FILE_RANGE_WRITE | unix.SYNC_FILE_RANGE_WAIT_AFTER
		if unix.SyncFileRange(int(fd), off, n, wait) == nil {
			unix.Fadvise(int(fd), off, n, unix.FADV_DONTNEED)
		}
	})
}
