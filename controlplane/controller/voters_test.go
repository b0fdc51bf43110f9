package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"
)

// TestRetireAndAddVoter removes a running controller from __meta as a
// decommission's last step does: it loses its broker record and its vote,
// retires (no longer registers, answers health checks as retired) and is
// not added back by the leader although cluster.toml still lists it. Then
// an operator adds it back as a voter.
func TestRetireAndAddVoter(t *testing.T) {
	cl := newCluster(t, options{}, three...)
	cl.waitReady()
	leader := cl.leader()
	victim := cl.follower(leader)
	other := int32(6) - leader - victim
	cl.brokerAlive(leader, victim, true, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if err := cl.nodes[other].c.RetireNode(ctx, victim); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("retire on a follower: %v, want ErrNotLeader", err)
	}
	if err := cl.nodes[leader].c.RetireNode(ctx, leader); err == nil {
		t.Fatal("the leader retired itself")
	}
	if err := cl.nodes[other].c.AddVoter(ctx, victim, cl.addrs[victim]); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("add voter on a follower: %v, want ErrNotLeader", err)
	}

	if err := cl.nodes[leader].c.RetireNode(ctx, victim); err != nil {
		t.Fatalf("retire node %d: %v", victim, err)
	}
	want := []int32{min(leader, other), max(leader, other)}
	if got, err := cl.nodes[leader].c.Voters(); err != nil || !slices.Equal(got, want) {
		t.Fatalf("voters after retiring %d: %v, %v; want %v", victim, got, err, want)
	}
	eventually(t, 5*time.Second, func() error {
		if !cl.nodes[victim].c.Retired() {
			return fmt.Errorf("node %d does not know it retired", victim)
		}
		return nil
	})
	// Once the leader has heard it answer as retired, reconciling the
	// voters against cluster.toml leaves it out, and its broker loop has
	// stopped: it stays unregistered.
	eventually(t, 5*time.Second, func() error {
		if a, ok := cl.nodes[leader].c.health.snapshot()[victim]; !ok || !a.Retired {
			return fmt.Errorf("leader has no retired answer from node %d: %+v", victim, a)
		}
		return nil
	})
	if got := cl.nodes[leader].c.Answering(); slices.Contains(got, victim) || len(got) != 2 {
		t.Errorf("controllers answering the leader: %v, want the two voters", got)
	}
	cl.nodes[leader].c.reconcileVoters(ctx, slog.New(slog.DiscardHandler))
	if got, _ := cl.nodes[leader].c.Voters(); !slices.Equal(got, want) {
		t.Fatalf("voters after reconciling: %v, want %v", got, want)
	}
	if _, err := cl.propose(other, topicCmd("after-retire", 1), 5*time.Second); err != nil {
		t.Fatalf("propose with two voters: %v", err)
	}
	if b := cl.nodes[leader].c.Service().State().Brokers[victim]; b != nil {
		t.Fatalf("retired node %d registered again: %+v", victim, b)
	}

	if err := cl.nodes[leader].c.AddVoter(ctx, victim, cl.addrs[victim]); err != nil {
		t.Fatalf("add node %d back: %v", victim, err)
	}
	if got, _ := cl.nodes[leader].c.Voters(); !slices.Equal(got, []int32{1, 2, 3}) {
		t.Fatalf("voters after adding %d back: %v", victim, got)
	}
	if _, err := cl.propose(leader, topicCmd("after-add", 1), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := cl.converged(); st.Topics["after-add"] == nil {
		t.Fatal("the re-added voter did not catch up")
	}
}

// TestRetireControllerOnlyNode retires a controller that is no broker: it
// has no broker record whose removal it could notice, so the leader tells
// it directly. It answers health checks as retired from then on, and a
// later leader, which never removed it itself, does not add it back.
func TestRetireControllerOnlyNode(t *testing.T) {
	cl := newCluster(t, options{}, peerSpec{id: 1}, peerSpec{id: 2}, peerSpec{id: 3, roles: []string{"controller"}})
	cl.waitReady()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	leader := cl.leader()
	if leader == 3 {
		if err := cl.nodes[3].c.TransferLeadership(ctx, 1); err != nil {
			t.Fatal(err)
		}
		leader = cl.leader()
	}
	other := 3 - leader // the other node with both roles

	if err := cl.nodes[leader].c.RetireNode(ctx, 3); err != nil {
		t.Fatalf("retire node 3: %v", err)
	}
	if !cl.nodes[3].c.Retired() {
		t.Fatal("node 3 does not know it retired")
	}
	if err := cl.nodes[leader].c.TransferLeadership(ctx, other); err != nil {
		t.Fatalf("move the leadership to node %d: %v", other, err)
	}
	// (cl.leader would wait for node 3 to agree, but it hears from the
	// group no more.)
	eventually(t, 5*time.Second, func() error {
		if !cl.nodes[other].c.IsLeader() {
			return fmt.Errorf("node %d does not lead", other)
		}
		return nil
	})
	eventually(t, 5*time.Second, func() error {
		if a, ok := cl.nodes[other].c.health.snapshot()[3]; !ok || !a.Retired {
			return fmt.Errorf("the new leader has no retired answer from node 3: %+v", a)
		}
		return nil
	})
	cl.nodes[other].c.reconcileVoters(ctx, slog.New(slog.DiscardHandler))
	if got, _ := cl.nodes[other].c.Voters(); slices.Contains(got, 3) {
		t.Fatalf("voters after the new leader reconciled: %v; node 3 is back", got)
	}
}
