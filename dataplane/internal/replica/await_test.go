package replica

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// stuckFuture is a future Raft dropped at shutdown: it never answers.
type stuckFuture struct{ release chan struct{} }

func (f stuckFuture) Error() error { <-f.release; return nil }

// answeredFuture answers at once.
type answeredFuture struct{ err error }

func (f answeredFuture) Error() error { return f.err }

// TestAwaitFutureReturnsWhenRaftDropsIt checks the way out of a future that
// Raft never answers (one still queued in its buffered apply channel when
// it shut down): once Raft is down, awaitFuture gives up after its grace
// with ErrRaftShutdown instead of holding the group's shutdown for ever,
// and it still hands over the answer of a future that has one.
func TestAwaitFutureReturnsWhenRaftDropsIt(t *testing.T) {
	down := make(chan struct{})
	stuck := stuckFuture{release: make(chan struct{})}
	defer close(stuck.release) // lets the abandoned waiter end with the test
	got := make(chan error, 1)
	go func() { got <- awaitFuture(stuck, down) }()
	select {
	case err := <-got:
		t.Fatalf("returned %v while Raft was still up", err)
	case <-time.After(50 * time.Millisecond):
	}
	start := time.Now()
	close(down)
	select {
	case err := <-got:
		if !errors.Is(err, raft.ErrRaftShutdown) {
			t.Fatalf("got %v, want %v", err, raft.ErrRaftShutdown)
		}
		if took := time.Since(start); took < droppedFutureGrace/2 {
			t.Fatalf("gave up after %v, before the %v grace", took, droppedFutureGrace)
		}
	case <-time.After(10 * droppedFutureGrace):
		t.Fatal("still waiting on a dropped future after Raft shut down")
	}

	want := errors.New("leadership lost")
	if err := awaitFuture(answeredFuture{want}, down); !errors.Is(err, want) {
		t.Fatalf("answered future after shutdown: got %v, want %v", err, want)
	}
	if err := awaitFuture(answeredFuture{}, make(chan struct{})); err != nil {
		t.Fatalf("answered future: got %v", err)
	}
}
