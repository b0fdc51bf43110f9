package kafka

import (
	"fmt"
	"io"
	"syscall"

	"github.com/chronik-stream/chronik/dataplane/internal/storage"
)

// sendChunk sends c to the socket with sendfile(2) from the chunk's own
// position, leaving the segment file's offset alone (other connections send
// from the same file at once). It waits on the runtime poller when the
// socket buffer is full. handled is false when the kernel refused sendfile
// for these descriptors before sending anything; the caller then copies.
func sendChunk(raw syscall.RawConn, c storage.Chunk) (n int, handled bool, err error) {
	fc, err := c.File.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	pos, left := c.Pos, c.Len
	var serr error
	handled = true
	cerr := fc.Control(func(in uintptr) {
		werr := raw.Write(func(out uintptr) bool {
			for left > 0 {
				w, err := syscall.Sendfile(int(out), int(in), &pos, left)
				if w > 0 {
					left -= w
				}
				switch {
				case err == syscall.EAGAIN:
					return false // wait until the socket is writable
				case err == syscall.EINTR:
				case (err == syscall.EINVAL || err == syscall.ENOSYS) && left == c.Len:
					handled = false
					return true
				case err != nil:
					serr = err
					return true
				case w == 0:
					serr = fmt.Errorf("segment file ends at %d: %w", pos, errShortChunk)
					return true
				}
			}
			return true
		})
		if serr == nil {
			serr = werr
		}
	})
	if serr == nil {
		serr = cerr
	}
	if serr != nil {
		if serr == io.EOF {
			serr = errShortChunk
		}
		return c.Len - left, true, fmt.Errorf("sendfile chunk at %d: %w", c.Pos, serr)
	}
	return c.Len - left, handled, nil
}

// cork holds (on) or releases (off) partial frames in the socket, so that
// the small pieces of a spliced response go out in full segments with the
// record data rather than as packets of their own.
func cork(raw syscall.RawConn, on bool) {
	v := 0
	if on {
		v = 1
	}
	raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, v)
	})
}
