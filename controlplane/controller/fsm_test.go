package controller

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

func logEntry(idx uint64, cmd *metadata.Command, nonce byte) *raft.Log {
	l := &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: cmd.Encode()}
	if nonce != 0 {
		l.Extensions = bytes.Repeat([]byte{nonce}, nonceLen)
	}
	return l
}

func TestFSMAnswersRetriesWithTheOriginalOutcome(t *testing.T) {
	f := newFSM()
	first := f.Apply(logEntry(1, allocCmd(5), 7)).(*outcome)
	if first.Result.FirstProducerID != 1000 || first.Index != 1 {
		t.Fatalf("first alloc %+v", first)
	}
	// The same proposal again (a retry after a lost answer): same
	// outcome, the state only moves its index.
	again := f.Apply(logEntry(2, allocCmd(5), 7)).(*outcome)
	if again != first {
		t.Fatalf("retry got %+v, want the original %+v", again, first)
	}
	if st := f.load(); st.Index != 2 || st.NextProducerID != 1005 {
		t.Fatalf("after retry: index %d next producer id %d", st.Index, st.NextProducerID)
	}
	// A different proposal is applied.
	if o := f.Apply(logEntry(3, allocCmd(5), 8)).(*outcome); o.Result.FirstProducerID != 1005 {
		t.Fatalf("second alloc %+v", o)
	}
	// Rejections are remembered with their identity.
	if o := f.Apply(logEntry(4, topicCmd("a", 0), 9)).(*outcome); !errors.Is(o.err(), metadata.ErrInvalidPartitions) {
		t.Fatalf("empty topic: %v", o.err())
	}
	if o := f.Apply(logEntry(5, topicCmd("a", 0), 9)).(*outcome); o.Index != 4 || !errors.Is(o.err(), metadata.ErrInvalidPartitions) {
		t.Fatalf("retried rejection: %+v", o)
	}
	// Entries without a nonce are never deduplicated.
	f.Apply(logEntry(6, allocCmd(1), 0))
	f.Apply(logEntry(7, allocCmd(1), 0))
	if got := f.load().NextProducerID; got != 1012 {
		t.Fatalf("next producer id %d, want 1012", got)
	}
	// Undecodable entries are rejected, not fatal.
	if o := f.Apply(&raft.Log{Index: 8, Type: raft.LogCommand, Data: []byte("{")}).(*outcome); !errors.Is(o.err(), metadata.ErrBadCommand) {
		t.Fatalf("garbage entry: %+v", o)
	}
}

func TestFSMForgetsNoncesAfterTheWindow(t *testing.T) {
	f := newFSM()
	f.Apply(logEntry(1, allocCmd(1), 1))
	f.Apply(logEntry(dedupWindow, allocCmd(1), 2))
	if o := f.Apply(logEntry(dedupWindow+1, allocCmd(1), 1)).(*outcome); o.Index != dedupWindow+1 {
		t.Fatalf("nonce from index 1 still remembered at %d: %+v", dedupWindow+1, o)
	}
	if o := f.Apply(logEntry(dedupWindow+2, allocCmd(1), 2)).(*outcome); o.Index != dedupWindow {
		t.Fatalf("nonce from index %d forgotten: %+v", dedupWindow, o)
	}
}

type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

func TestFSMSnapshotRestore(t *testing.T) {
	f := newFSM()
	f.StoreConfiguration(1, raft.Configuration{Servers: []raft.Server{{ID: "1", Address: "a:1"}}})
	f.Apply(logEntry(2, topicCmd("orders", 2), 1))
	f.Apply(logEntry(3, allocCmd(3), 2))
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	g := newFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.load(), g.load()) {
		t.Fatalf("restored image differs:\n%+v\n%+v", f.load(), g.load())
	}
	if g.load().ClusterID == "" {
		t.Fatal("cluster id lost in the snapshot")
	}
	// The dedup table travels with the snapshot.
	if o := g.Apply(logEntry(4, allocCmd(3), 2)).(*outcome); o.Index != 3 {
		t.Fatalf("restored replica applied a retry again: %+v", o)
	}
	if g.restores.Load() != 1 {
		t.Fatalf("restores = %d", g.restores.Load())
	}
	if err := g.Restore(io.NopCloser(bytes.NewReader([]byte(`{"state":null}`)))); err == nil {
		t.Fatal("restore of an empty snapshot succeeded")
	}
}

func TestClusterIDIsStableAndConfigurationSpecific(t *testing.T) {
	a := raft.Configuration{Servers: []raft.Server{{ID: "1", Address: "h1:9093"}, {ID: "2", Address: "h2:9093"}}}
	b := raft.Configuration{Servers: append(append([]raft.Server(nil), a.Servers...), raft.Server{ID: "4", Address: "h4:9093"})}
	if clusterID(a) != clusterID(a) || clusterID(a) == clusterID(b) || len(clusterID(a)) != 22 {
		t.Fatalf("cluster ids %q %q", clusterID(a), clusterID(b))
	}
	f := newFSM()
	f.StoreConfiguration(1, a)
	f.StoreConfiguration(5, b)
	if got := f.load().ClusterID; got != clusterID(a) {
		t.Fatalf("cluster id %q, want the first configuration's %q", got, clusterID(a))
	}
}

func TestRejectionsKeepIdentityOverTheWire(t *testing.T) {
	for _, r := range rejections {
		orig := errors.Join(r.err) // any wrapping
		code, msg := encodeError(orig)
		got := decodeError(code, msg)
		if !errors.Is(got, r.err) || got.Error() != orig.Error() {
			t.Errorf("%s: got %v", r.code, got)
		}
	}
	other := errors.New("something new")
	code, msg := encodeError(other)
	if got := decodeError(code, msg); !errors.Is(got, ErrRejected) || got.Error() != "something new" {
		t.Errorf("unknown rejection came back as %v", got)
	}
	if decodeError("", "") != nil {
		t.Error("empty code decoded to an error")
	}
}

func TestFormatIDs(t *testing.T) {
	if got := formatIDs([]int32{3, 2}); got != "[2, 3]" {
		t.Fatalf("formatIDs = %q", got)
	}
	if got := formatIDs(nil); got != "[]" {
		t.Fatalf("formatIDs(nil) = %q", got)
	}
}

func TestLivenessCheck(t *testing.T) {
	st := metadata.NewState("")
	st.Brokers[1] = &metadata.Broker{ID: 1, Alive: true}
	st.Brokers[2] = &metadata.Broker{ID: 2, Alive: false}
	st.Brokers[3] = &metadata.Broker{ID: 3, Alive: false}
	c := &Controller{hbInterval: 100 * time.Millisecond, view: newView(st)}
	l := newLiveness(c)
	l.heard, l.noticed, l.wasLive = map[int32]time.Time{}, map[int32]time.Time{}, map[int32]bool{}
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

	// Everyone gets a full timeout from the start of the term; broker 3
	// has never been heard and stays dead.
	if cmds := l.check(t0, t0); len(cmds) != 0 {
		t.Fatalf("commands at the start of the term: %+v", cmds)
	}
	if cmds := l.check(t0, ms(250)); len(cmds) != 0 {
		t.Fatalf("commands inside the grace period: %+v", cmds)
	}
	l.heard[2] = ms(280)
	cmds := l.check(t0, ms(350))
	got := map[int32]bool{}
	for _, c := range cmds {
		got[c.BrokerState.ID] = c.BrokerState.Alive
	}
	if want := map[int32]bool{1: false, 2: true}; !reflect.DeepEqual(got, want) {
		t.Fatalf("liveness changes %v, want %v", got, want)
	}
	// A broker revived in the image gets a fresh timeout from then.
	c.view.publish(func() *metadata.State {
		n := st.Clone()
		n.Brokers[1].Alive = false
		n.Brokers[2].Alive = true
		return n
	}())
	l.check(t0, ms(400))
	if cmds := l.check(t0, ms(650)); len(cmds) != 0 {
		t.Fatalf("broker 2 judged before a timeout from its revival: %+v", cmds)
	}
	if cmds := l.check(t0, ms(750)); len(cmds) != 1 || cmds[0].BrokerState.ID != 2 || cmds[0].BrokerState.Alive {
		t.Fatalf("broker 2 silent since its revival: %+v", cmds)
	}
}
