package replica

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// countingStore counts the reads that reach it.
type countingStore struct {
	*raft.InmemStore
	reads int
}

func (s *countingStore) GetLog(idx uint64, l *raft.Log) error {
	s.reads++
	return s.InmemStore.GetLog(idx, l)
}

// The cache answers for its last entries, forwards the rest, empties on
// DeleteRange, and lets its entries go once the group has been idle.
func TestLogCache(t *testing.T) {
	store := &countingStore{InmemStore: raft.NewInmemStore()}
	c := newLogCache(store, 8)
	var logs []*raft.Log
	for i := uint64(1); i <= 20; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Data: []byte(fmt.Sprint("e", i))})
	}
	if err := c.StoreLogs(logs[:15]); err != nil {
		t.Fatal(err)
	}
	if err := c.StoreLog(logs[15]); err != nil {
		t.Fatal(err)
	}
	read := func(idx uint64, fromStore bool) {
		t.Helper()
		before := store.reads
		var l raft.Log
		if err := c.GetLog(idx, &l); err != nil {
			t.Fatalf("entry %d: %v", idx, err)
		}
		if string(l.Data) != fmt.Sprint("e", idx) || l.Index != idx {
			t.Fatalf("entry %d: got %d %q", idx, l.Index, l.Data)
		}
		if got := store.reads > before; got != fromStore {
			t.Fatalf("entry %d read from the store: %v, want %v", idx, got, fromStore)
		}
	}
	for i := uint64(1); i <= 16; i++ {
		read(i, i <= 8) // the cache holds the last 8
	}
	c.forget(7) // its slot holds 15, which stays
	read(15, false)
	c.forget(15)
	read(15, true)
	read(14, false)
	c.forgetThrough(12)
	read(12, true)
	read(13, false)

	c.releaseIfIdle(time.Now(), time.Minute) // not idle: kept
	read(14, false)
	read(16, false)
	c.releaseIfIdle(time.Now().Add(2*time.Minute), time.Minute)
	read(14, true)
	read(16, false) // the newest stays: an idle leader reads it at every commit tick

	if err := c.StoreLogs(logs[16:]); err != nil {
		t.Fatal(err)
	}
	read(20, false)
	if err := c.DeleteRange(18, 20); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := c.GetLog(20, &l); err == nil {
		t.Fatalf("entry 20 after its deletion: %d %q", l.Index, l.Data)
	}
	read(17, true)

	// A large newest entry is not kept through an idle release.
	big := newLogCache(raft.NewInmemStore(), 8)
	if err := big.StoreLogs([]*raft.Log{{Index: 1, Term: 1}, {Index: 2, Term: 1, Data: make([]byte, idleKeepBytes+1)}}); err != nil {
		t.Fatal(err)
	}
	big.releaseIfIdle(time.Now().Add(2*time.Minute), time.Minute)
	for _, e := range big.ring {
		if e != nil {
			t.Fatalf("idle cache keeps entry %d (%d bytes) behind a newest entry over %d bytes", e.Index, len(e.Data), idleKeepBytes)
		}
	}

	if c.IsMonotonic() {
		t.Fatal("monotonic over a store that is not")
	}
	if !newLogCache(chunkedLogStore{openTestWAL(t)}, 4).IsMonotonic() {
		t.Fatal("raft-wal's monotonic log is hidden behind the cache")
	}
}

// A follower keeps no command it has applied in its cache, and a leader
// only those a follower has yet to store (and the last stored, which Raft
// reads for its term). Raft's own entries, such as no-ops and
// configurations, never reach the state machine; they are few and small,
// and the ring or the idle release drops them.
func TestRaftCacheKeepsWhatFollowersNeed(t *testing.T) {
	c := newTestCluster(t, 3, fastTimings())
	c.createTopicOn("fc", [][]int32{{1, 2, 3}}, nil)
	for i := range 5 {
		c.produceRetrying("fc", 0, makeBatch(2, fmt.Sprint("a", i), -1, 0, 0))
	}
	ln, _ := c.leader("fc", 0, 10*time.Second)
	settled := func() error {
		for _, n := range c.running() {
			held, applied := commandsCached(n, "fc", 0)
			limit := 0
			if n == ln {
				limit = 1
			}
			if held > limit {
				return fmt.Errorf("node %d (leader %v) caches %d applied entries (applied %d)", n.id, n == ln, held, applied)
			}
		}
		return nil
	}
	eventually(t, 10*time.Second, "caches emptied of entries no one needs", settled)

	// A stopped follower stores nothing: the leader keeps all it sends.
	late := slices.DeleteFunc(c.ids(), func(id int32) bool { return id == ln.id })[0]
	c.stop(late)
	for i := range 5 {
		if _, err := produce(ln, "fc", 0, makeBatch(2, fmt.Sprint("b", i), -1, 0, 0), -1, 5*time.Second); err != nil {
			t.Fatalf("produce b%d: %v", i, err)
		}
	}
	if held, applied := commandsCached(ln, "fc", 0); held < 5 {
		t.Fatalf("leader caches %d applied entries (applied %d) while node %d lacks the last 5", held, applied, late)
	}
	c.start(late, nil)
	c.awaitIdentical("fc", 0, 20)
	eventually(t, 10*time.Second, "caches emptied once the follower caught up", settled)
}

// A follower that forgot the entries it applied can still lead: a replica
// that missed them while stopped gets them from the new leader's raft-wal
// log, and nothing acknowledged is lost.
func TestRaftNewLeaderServesForgottenEntries(t *testing.T) {
	c := newTestCluster(t, 3, fastTimings())
	c.createTopicOn("fe", [][]int32{{1, 2, 3}}, nil)
	c.produceRetrying("fe", 0, makeBatch(2, "a", -1, 0, 0))
	ln, _ := c.leader("fe", 0, 10*time.Second)
	ids := slices.DeleteFunc(c.ids(), func(id int32) bool { return id == ln.id })
	late, next := ids[0], ids[1]
	c.awaitIdentical("fe", 0, 2)

	c.stop(late)
	want := []string{"a/0", "a/1"}
	for i := range 10 {
		tag := fmt.Sprint("b", i)
		if _, err := produce(ln, "fe", 0, makeBatch(2, tag, -1, 0, 0), -1, 5*time.Second); err != nil {
			t.Fatalf("produce %s: %v", tag, err)
		}
		want = append(want, tag+"/0", tag+"/1")
	}
	c.awaitIdentical("fe", 0, 22) // next has applied, and so forgotten, them all
	eventually(t, 10*time.Second, "follower's cache emptied", func() error {
		if held, _ := commandsCached(c.nodes[next], "fe", 0); held > 0 {
			return fmt.Errorf("follower %d still caches %d applied entries", next, held)
		}
		return nil
	})

	// Only next can be elected (late's log is behind); it serves late the
	// entries it forgot from its own log.
	c.stop(ln.id)
	c.start(late, nil)
	if n, _ := c.leader("fe", 0, 20*time.Second); n.id != next {
		t.Fatalf("node %d leads; want %d", n.id, next)
	}
	log := c.awaitIdentical("fe", 0, 22)
	if got := recordValues(t, log); !slices.Equal(got, want) {
		t.Fatalf("replicas hold\n %v\nwant\n %v", got, want)
	}
	if n := c.nodes[late].rr.group("fe", 0).fsm.copied.Load(); n != 0 {
		t.Fatalf("node %d caught up from a snapshot (%d batches copied), not from the log", late, n)
	}
}

// commandsCached counts the applied commands in node n's cache of topic/part.
func commandsCached(n *testNode, topic string, part int32) (held int, applied uint64) {
	g := n.rr.group(topic, part)
	applied = g.raft.AppliedIndex()
	g.cache.mu.RLock()
	defer g.cache.mu.RUnlock()
	for _, e := range g.cache.ring {
		if e != nil && e.Index <= applied && e.Type == raft.LogCommand {
			held++
		}
	}
	return held, applied
}
