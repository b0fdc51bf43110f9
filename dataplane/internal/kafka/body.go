package kafka

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// Request bodies are read into buffers from bodyPools when they are large:
// a fresh buffer for every Produce frame cost a fifth to nearly half of a
// standalone broker's CPU under load (100 B and 1 KiB records), in zeroing
// new memory, faulting its pages in and the runtime handing them back to
// the kernel afterwards.
//
// A body goes back to its pool only when nothing can still refer to it,
// which is known per API: kmsg decodes byte fields as slices of the body,
// and the group coordinator keeps some of them (member metadata,
// assignments). Produce is the one API pooled; its handler copies every
// record batch it keeps (into the log's write buffer or a Raft entry)
// before its synchronous phase returns, and its wait reads no record bytes.
const (
	minPooledBodyShift = 16 // 64 KiB: smaller bodies are cheap to allocate
	maxPooledBodyShift = 24 // 16 MiB: larger ones are rare enough to allocate
)

var bodyPools [maxPooledBodyShift - minPooledBodyShift + 1]sync.Pool

// poisonBodies makes putBody overwrite every body it takes back, so that a
// test sees at once whether anything still reads a body after its release.
var poisonBodies atomic.Bool

// bodyClass is the pool of a buffer with capacity n, or -1 if none.
func bodyClass(n int) int {
	if n <= 0 || n > 1<<maxPooledBodyShift {
		return -1
	}
	return max(bits.Len(uint(n-1)), minPooledBodyShift) - minPooledBodyShift
}

// getBody returns a buffer of length n, from a pool when n is large.
func getBody(n int) []byte {
	c := bodyClass(n)
	if n < 1<<minPooledBodyShift || c < 0 {
		return make([]byte, n)
	}
	if b, ok := bodyPools[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, 1<<(c+minPooledBodyShift))
}

// putBody hands a body from getBody back once nothing refers to it. Bodies
// that did not come from a pool are left to the collector.
func putBody(b []byte) {
	c := bodyClass(cap(b))
	if c < 0 || cap(b) != 1<<(c+minPooledBodyShift) {
		return
	}
	if poisonBodies.Load() {
		b = b[:cap(b)]
		for i := range b {
			b[i] = 0xAA
		}
	}
	b = b[:0]
	bodyPools[c].Put(&b)
}

// bodyReusable reports whether the body of a request with this API key may
// go back to its pool once the request's synchronous phase has returned.
func bodyReusable(key int16) bool { return key == produceKey }
