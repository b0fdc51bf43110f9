package replica

import (
	"fmt"
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

	c.releaseIfIdle(time.Now(), time.Minute) // not idle: kept
	read(16, false)
	c.releaseIfIdle(time.Now().Add(2*time.Minute), time.Minute)
	read(16, true)

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

	if c.IsMonotonic() {
		t.Fatal("monotonic over a store that is not")
	}
	if !newLogCache(chunkedLogStore{openTestWAL(t)}, 4).IsMonotonic() {
		t.Fatal("raft-wal's monotonic log is hidden behind the cache")
	}
}
