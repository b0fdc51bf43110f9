//go:build !linux

package replica

import "github.com/hashicorp/raft-wal/types"

// writeDirect writes through the page cache where O_DIRECT is not built
// (raft_wal_direct_linux.go), handing back synced pages where it can.
func writeDirect(f types.WritableFile) types.WritableFile { return dropSynced(f) }

// dropPages leaves the page cache to the kernel where fadvise is not
// available.
func dropPages(int, int64, int64) {}
