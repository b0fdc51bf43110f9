//go:build !linux

package storage

import "os"

// fdatasync falls back to fsync where fdatasync is not available.
func fdatasync(f *os.File) error { return f.Sync() }

// startWriteback is only a hint; without sync_file_range it does nothing.
func startWriteback(*os.File, int64, int64) {}

// releasePages leaves the page cache to the kernel where sync_file_range
// and fadvise are not available.
func releasePages(*os.File, int64, int64) {}
