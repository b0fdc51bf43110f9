package replica

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

// TestRaftTransferLeaderFromAnyNode moves a partition's leadership by
// asking a node that does not lead it, and one that does not even host
// it, and reads the group's state over replica.state.
func TestRaftTransferLeaderFromAnyNode(t *testing.T) {
	c := newTestCluster(t, 3, fastTimings())
	c.createTopicOn("tl", [][]int32{{1, 2}}, nil)
	c.produceRetrying("tl", 0, makeBatch(2, "a", -1, 0, 0))
	ln, _ := c.leader("tl", 0, 10*time.Second)
	other := int32(1)
	if ln.id == 1 {
		other = 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Node 3 hosts no replica: it forwards to the leader in the metadata
	// (or the one its answer names).
	got, err := c.nodes[3].rr.TransferLeader(ctx, "tl", 0, other)
	if err != nil || got != other {
		t.Fatalf("transfer via node 3: leader %d, %v; want %d", got, err, other)
	}
	if n, _ := c.leader("tl", 0, 10*time.Second); n.id != other {
		t.Fatalf("node %d leads, want %d", n.id, other)
	}

	// The old leader, now a follower, forwards to the new one.
	got, err = c.nodes[ln.id].rr.TransferLeader(ctx, "tl", 0, ln.id)
	if err != nil || got != ln.id {
		t.Fatalf("transfer via node %d: leader %d, %v", ln.id, got, err)
	}
	c.leader("tl", 0, 10*time.Second)

	if _, err := c.nodes[3].rr.TransferLeader(ctx, "tl", 0, 3); err == nil {
		t.Fatal("transfer to a node outside the group succeeded")
	}

	// Every node answers for itself, this one directly, the others over
	// the raft port.
	eventually(t, 10*time.Second, "group state from every node", func() error {
		for _, id := range []int32{1, 2, 3} {
			s, err := c.nodes[1].rr.GroupStateOf(ctx, id, "tl", 0)
			if err != nil {
				return err
			}
			wantHosted := id != 3
			if s.Hosted != wantHosted {
				return fmt.Errorf("node %d: hosted %v", id, s.Hosted)
			}
			if !wantHosted {
				continue
			}
			if !slices.Equal(s.Members, []int32{1, 2}) || s.Leader != ln.id || s.IsLeader != (id == ln.id) || s.AppliedIndex == 0 {
				return fmt.Errorf("node %d: %+v", id, s)
			}
		}
		return nil
	})
}

func TestAdminCodecRoundTrip(t *testing.T) {
	s := GroupState{Hosted: true, Leader: 3, IsLeader: true, Term: 7, CommitIndex: 99, AppliedIndex: 98, Members: []int32{1, 3, 4}}
	got, err := decodeGroupState(s.encode())
	if err != nil || fmt.Sprint(got) != fmt.Sprint(s) {
		t.Fatalf("group state round trip: %+v, %v", got, err)
	}
	q := transferQuery{groupRef: groupRef{Topic: "orders", Partition: 2}, To: 4}
	if gq, err := decodeTransferQuery(q.encode()); err != nil || gq != q {
		t.Fatalf("transfer query round trip: %+v, %v", gq, err)
	}
	a := transferAnswer{Leader: 2, NotLeader: true, Err: "no"}
	if ga, err := decodeTransferAnswer(a.encode()); err != nil || ga != a {
		t.Fatalf("transfer answer round trip: %+v, %v", ga, err)
	}
	if _, err := decodeGroupRef(groupRef{Topic: "", Partition: 1}.encode()); err == nil {
		t.Fatal("empty topic decoded")
	}
}

func FuzzAdminDecoders(f *testing.F) {
	f.Add(GroupState{Hosted: true, Leader: 1, Term: 2, Members: []int32{1, 2, 3}}.encode())
	f.Add(transferQuery{groupRef: groupRef{Topic: "t", Partition: 0}, To: 2}.encode())
	f.Add(transferAnswer{Leader: 2, Err: "x"}.encode())
	f.Add(groupRef{Topic: "t", Partition: 1}.encode())
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := decodeGroupState(b); err == nil && !bytes.Equal(s.encode(), b) {
			if s2, err := decodeGroupState(s.encode()); err != nil || fmt.Sprint(s2) != fmt.Sprint(s) {
				t.Fatalf("group state %+v round trip: %+v %v", s, s2, err)
			}
		}
		if q, err := decodeTransferQuery(b); err == nil {
			if q2, err := decodeTransferQuery(q.encode()); err != nil || q2 != q {
				t.Fatalf("transfer query %+v round trip: %+v %v", q, q2, err)
			}
		}
		if a, err := decodeTransferAnswer(b); err == nil {
			if a2, err := decodeTransferAnswer(a.encode()); err != nil || a2 != a {
				t.Fatalf("transfer answer %+v round trip: %+v %v", a, a2, err)
			}
		}
		if q, err := decodeGroupRef(b); err == nil {
			if q2, err := decodeGroupRef(q.encode()); err != nil || q2 != q {
				t.Fatalf("group ref %+v round trip: %+v %v", q, q2, err)
			}
		}
	})
}

// TestRaftTransferWhileOneIsUnderWay asks for a transfer while the leader
// is already moving its leadership (as a draining node does by itself):
// the request waits for the first transfer and then succeeds, whether the
// first went to the same node, elsewhere, or failed; so does the SIGTERM
// hand-off.
func TestRaftTransferWhileOneIsUnderWay(t *testing.T) {
	c := newTestCluster(t, 3, fastTimings())
	c.createTopicOn("tw", [][]int32{{1, 2, 3}}, nil)
	c.produceRetrying("tw", 0, makeBatch(2, "a", -1, 0, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, sameTarget := range []bool{true, false} {
		ln, _ := c.leader("tw", 0, 10*time.Second)
		g := ln.rr.group("tw", 0)
		ids := slices.DeleteFunc(c.ids(), func(id int32) bool { return id == ln.id })
		first, second := ids[0], ids[1]
		if sameTarget {
			second = first
		}
		f, err := ln.rr.startTransfer(g, first)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ln.rr.TransferLeader(ctx, "tw", 0, second)
		if err != nil || got != second {
			t.Fatalf("transfer to %d while one to %d is under way: leader %d, %v", second, first, got, err)
		}
		if err := f.Error(); err != nil {
			t.Fatalf("first transfer: %v", err)
		}
		if n, _ := c.leader("tw", 0, 10*time.Second); n.id != second {
			t.Fatalf("node %d leads; want %d", n.id, second)
		}
	}

	// The SIGTERM hand-off counts a transfer under way as its own.
	ln, _ := c.leader("tw", 0, 10*time.Second)
	f, err := ln.rr.startTransfer(ln.rr.group("tw", 0), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ln.rr.TransferAll(ctx); err != nil {
		t.Fatalf("hand-off while a transfer is under way: %v", err)
	}
	if err := f.Error(); err != nil {
		t.Fatalf("first transfer: %v", err)
	}
	if n, _ := c.leader("tw", 0, 10*time.Second); n == ln {
		t.Fatalf("node %d still leads after its hand-off", ln.id)
	}

	// A transfer under way that fails leaves the leadership in place, and
	// the waiting one starts again. The first one's target is cut off and
	// behind, so Raft gives up on it after an election timeout.
	c.produceRetrying("tw", 0, makeBatch(2, "b", -1, 0, 0))
	ln, _ = c.leader("tw", 0, 10*time.Second)
	ids := slices.DeleteFunc(c.ids(), func(id int32) bool { return id == ln.id })
	cut, up := ids[0], ids[1]
	ln.mux.Block(c.nodes[cut].addr)
	c.produceRetrying("tw", 0, makeBatch(2, "c", -1, 0, 0))
	if f, err = ln.rr.startTransfer(ln.rr.group("tw", 0), cut); err != nil {
		t.Fatal(err)
	}
	if got, err := ln.rr.TransferLeader(ctx, "tw", 0, up); err != nil || got != up {
		t.Fatalf("transfer to %d after one to cut-off node %d: leader %d, %v", up, cut, got, err)
	}
	if err := f.Error(); err == nil {
		t.Fatalf("transfer to cut-off node %d succeeded", cut)
	}
	ln.mux.Unblock(c.nodes[cut].addr)
	if n, _ := c.leader("tw", 0, 10*time.Second); n.id != up {
		t.Fatalf("node %d leads; want %d", n.id, up)
	}
	c.produceRetrying("tw", 0, makeBatch(2, "d", -1, 0, 0))
}

// A draining node is not handed leaderships and gives away any Raft
// still elects it to: the SIGTERM hand-off picks a replica that is not
// draining, and a draining node that wins a leadership moves it on.
func TestRaftDrainingNodeLeadsNothing(t *testing.T) {
	c := newTestCluster(t, 3, fastTimings())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	setBroker := func(id int32, draining bool) {
		t.Helper()
		cmd := &metadata.Command{RegisterBroker: &metadata.Broker{ID: id, Alive: true}}
		if draining {
			cmd = &metadata.Command{BrokerState: &metadata.BrokerStateCmd{ID: id, Alive: true, Draining: true}}
		}
		if _, err := c.meta.Propose(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range c.ids() {
		setBroker(id, false)
	}
	c.createTopicOn("dr", [][]int32{{1, 2, 3}}, nil)
	c.produceRetrying("dr", 0, makeBatch(2, "a", -1, 0, 0))
	ln, _ := c.leader("dr", 0, 10*time.Second)
	// Both followers must be in the leader's ISR before it picks one.
	eventually(t, 10*time.Second, "full isr", func() error {
		if isr, ok := ln.rr.group("dr", 0).leaderISR(ln.rr.group("dr", 0).raft.CurrentTerm()); !ok || len(isr) != 3 {
			return fmt.Errorf("isr %v", isr)
		}
		return nil
	})
	var drained, other int32
	for _, id := range c.ids() {
		switch {
		case id == ln.id:
		case drained == 0:
			drained = id
		default:
			other = id
		}
	}
	setBroker(drained, true)

	if err := ln.rr.TransferAll(ctx); err != nil {
		t.Fatalf("hand-off: %v", err)
	}
	if n, _ := c.leader("dr", 0, 10*time.Second); n.id != other {
		t.Fatalf("the hand-off went to node %d; want %d, which is not draining", n.id, other)
	}

	// Raft may still elect the draining node (here a transfer stands in
	// for the election); it moves the leadership on by itself.
	if err := c.nodes[other].rr.Transfer(ctx, "dr", 0, drained); err != nil {
		t.Fatalf("transfer to the draining node: %v", err)
	}
	eventually(t, 10*time.Second, "draining node gives up the leadership", func() error {
		n, _ := c.leader("dr", 0, 10*time.Second)
		if n.id == drained {
			return fmt.Errorf("node %d, draining, still leads", drained)
		}
		return nil
	})
	c.produceRetrying("dr", 0, makeBatch(2, "b", -1, 0, 0))
}
