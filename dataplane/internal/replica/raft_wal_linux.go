package replica

import "golang.org/x/sys/unix"

// dropPages asks the kernel to drop n bytes of fd's page cache at off.
func dropPages(fd int, off, n int64) {
	_ = unix.Fadvise(fd, off, n, unix.FADV_DONTNEED)
}
