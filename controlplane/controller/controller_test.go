package controller

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

var three = []peerSpec{{id: 1}, {id: 2}, {id: 3}}

// guideTimings are the deployment guide's [raft] settings.
var guideTimings = options{electionTimeout: 300 * time.Millisecond, heartbeatInterval: 30 * time.Millisecond}

func TestBootstrapProposeAndForward(t *testing.T) {
	cl := newCluster(t, guideTimings, three...)
	cl.waitReady()
	leader := cl.leader()
	t.Logf("leader is node %d", leader)

	for _, id := range []int32{1, 2, 3} {
		p := fmt.Sprintf("n%d", id)
		others := map[int32]string{1: "[2, 3]", 2: "[1, 3]", 3: "[1, 2]"}[id]
		for _, want := range []string{
			fmt.Sprintf("Creating ClusterCoordinator for node %d with 2 peers", id),
			"Creating metadata partition with peers: " + others,
			fmt.Sprintf("Starting cluster bootstrap for node %d (cluster size: 3)", id),
			"Waiting for quorum (need 2/3 nodes)...",
			fmt.Sprintf("Bootstrap complete for node %d", id),
		} {
			if !cl.logs.has(p, want) {
				t.Errorf("node %d did not log %q", id, want)
			}
		}
		if !cl.logs.has(p, "Quorum achieved! 3/3 peers alive") && !cl.logs.has(p, "Quorum achieved! 2/3 peers alive") {
			t.Errorf("node %d did not log the quorum line", id)
		}
	}

	// A follower's proposal is forwarded, and the proposer reads its own
	// write as soon as Propose returns.
	f := cl.follower(leader)
	if _, err := cl.propose(f, topicCmd("orders", 3), 5*time.Second); err != nil {
		t.Fatalf("create topic via follower %d: %v", f, err)
	}
	if cl.nodes[f].c.Service().State().Topics["orders"] == nil {
		t.Fatalf("follower %d does not see its own write", f)
	}
	st := cl.converged()
	if got := len(st.Topics["orders"].Partitions); got != 3 {
		t.Fatalf("orders has %d partitions, want 3", got)
	}
	if st.ClusterID == "" || len(st.ClusterID) != 22 {
		t.Fatalf("cluster id %q", st.ClusterID)
	}

	// Rejections keep their identity on the leader and across forwarding.
	for _, id := range []int32{leader, f} {
		_, err := cl.propose(id, topicCmd("orders", 1), 5*time.Second)
		if !errors.Is(err, metadata.ErrTopicExists) {
			t.Fatalf("duplicate topic via node %d: %v, want ErrTopicExists", id, err)
		}
		t.Logf("node %d: %v", id, err)
	}
	missing := "nope"
	if _, err := cl.propose(f, &metadata.Command{DeleteTopic: &missing}, 5*time.Second); !errors.Is(err, metadata.ErrUnknownTopic) {
		t.Fatalf("delete missing topic via follower: %v", err)
	}

	// Results come back through forwarding: producer id blocks never overlap.
	seen := map[int64]bool{}
	for i, id := range []int32{1, 2, 3, 1, 2, 3} {
		res, err := cl.propose(id, allocCmd(10), 5*time.Second)
		if err != nil {
			t.Fatalf("alloc %d via node %d: %v", i, id, err)
		}
		if seen[res.FirstProducerID] {
			t.Fatalf("producer id block %d handed out twice", res.FirstProducerID)
		}
		seen[res.FirstProducerID] = true
	}

	// Every node registered as a live broker with its advertised endpoint.
	eventually(t, 5*time.Second, func() error {
		st := cl.nodes[leader].c.Service().State()
		for _, id := range []int32{1, 2, 3} {
			b := st.Brokers[id]
			if b == nil || !b.Alive || b.Host != "127.0.0.1" || b.Port != 19000+id || b.RaftAddr != cl.addrs[id] {
				return fmt.Errorf("broker %d: %+v", id, b)
			}
		}
		return nil
	})

	// Metrics read live raft state.
	eventually(t, 5*time.Second, func() error {
		leader := cl.leader()
		leaders := 0.0
		for _, id := range []int32{1, 2, 3} {
			leaders += cl.gauge(id, "raft_is_leader")
			if got := cl.gauge(id, "raft_leader"); got != float64(leader) {
				return fmt.Errorf("node %d raft_leader %v", id, got)
			}
			if got := cl.gauge(id, "cluster_quorum_size"); got != 3 {
				return fmt.Errorf("node %d cluster_quorum_size %v", id, got)
			}
			if got := cl.gauge(id, "cluster_size"); got != 3 {
				return fmt.Errorf("node %d cluster_size %v", id, got)
			}
			term, commit, applied := cl.nodes[id].c.Stats()
			if cl.gauge(id, "raft_term") != float64(term) || term == 0 || commit == 0 || applied == 0 {
				return fmt.Errorf("node %d stats %d/%d/%d", id, term, commit, applied)
			}
		}
		if leaders != 1 {
			return fmt.Errorf("%v nodes report raft_is_leader 1", leaders)
		}
		return nil
	})
}

func TestLeaderFailoverAndRejoin(t *testing.T) {
	cl := newCluster(t, options{}, three...)
	cl.waitReady()
	old := cl.leader()
	if _, err := cl.propose(old, topicCmd("before", 1), 5*time.Second); err != nil {
		t.Fatal(err)
	}

	killed := time.Now()
	cl.kill(old)
	leader := cl.leader()
	t.Logf("node %d took over from %d after %v", leader, old, time.Since(killed))
	if leader == old {
		t.Fatalf("leader still %d", old)
	}

	// Proposals continue, from the new leader and from the other node.
	for _, id := range cl.running() {
		if _, err := cl.propose(id, topicCmd(fmt.Sprintf("after-%d", id), 1), 5*time.Second); err != nil {
			t.Fatalf("propose via node %d after failover: %v", id, err)
		}
	}

	// The old leader restarts on its data directory, rejoins as a follower
	// and catches up.
	n := cl.start(old, nil)
	cl.waitReady(old)
	if n.c.IsLeader() {
		t.Fatalf("node %d came back as leader, want follower", old)
	}
	if !cl.logs.has(fmt.Sprintf("n%d", old), "Found existing metadata log; rejoining without bootstrap") {
		t.Errorf("restarted node %d did not recognise its existing log", old)
	}
	if _, err := cl.propose(old, topicCmd("rejoined", 1), 5*time.Second); err != nil {
		t.Fatalf("propose via rejoined node: %v", err)
	}
	st := cl.converged()
	for _, name := range []string{"before", "rejoined"} {
		if st.Topics[name] == nil {
			t.Fatalf("topic %s missing after rejoin", name)
		}
	}
}

func TestQuorumLossAndRecovery(t *testing.T) {
	cl := newCluster(t, options{}, three...)
	cl.waitReady()
	leader := cl.leader()
	if _, err := cl.propose(leader, topicCmd("kept", 1), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	var lost []int32
	for _, id := range cl.running() {
		if id != leader {
			lost = append(lost, id)
		}
	}
	for _, id := range lost {
		cl.kill(id)
	}

	// Without a quorum proposals run into their deadline; reads still work.
	_, err := cl.propose(leader, topicCmd("lost", 1), 1500*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrNoLeader) {
		t.Fatalf("propose without quorum: %v, want a deadline error", err)
	}
	t.Logf("without quorum: %v", err)
	st := cl.nodes[leader].c.Service().State()
	if st.Topics["kept"] == nil || st.Topics["lost"] != nil {
		t.Fatalf("image after quorum loss: topics %v", st.Topics)
	}
	eventually(t, 5*time.Second, func() error {
		if got := cl.gauge(leader, "cluster_quorum_size"); got != 1 {
			return fmt.Errorf("cluster_quorum_size %v", got)
		}
		return nil
	})

	// One node back: a quorum again, and proposals resume.
	cl.start(lost[0], nil)
	cl.waitReady(lost[0])
	if _, err := cl.propose(leader, topicCmd("resumed", 1), 10*time.Second); err != nil {
		t.Fatalf("propose after quorum returned: %v", err)
	}
	if cl.converged().Topics["resumed"] == nil {
		t.Fatal("resumed topic missing")
	}
}

func TestTransferLeadership(t *testing.T) {
	cl := newCluster(t, options{}, three...)
	cl.waitReady()
	old := cl.leader()
	target := cl.follower(old)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.nodes[old].c.TransferLeadership(ctx, target); err != nil {
		t.Fatalf("transfer to %d: %v", target, err)
	}
	if got := cl.leader(); got != target {
		t.Fatalf("leader %d after transfer to %d", got, target)
	}

	// From a follower, to the best candidate: the leader does it.
	var from int32
	for _, id := range cl.running() {
		if id != target {
			from = id
			break
		}
	}
	if err := cl.nodes[from].c.TransferLeadership(ctx, 0); err != nil {
		t.Fatalf("transfer via follower %d: %v", from, err)
	}
	if got := cl.leader(); got == target {
		t.Fatalf("leader still %d after transfer to best candidate", got)
	}
	if err := cl.nodes[from].c.TransferLeadership(ctx, 42); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("transfer to unknown node: %v", err)
	}
	if _, err := cl.propose(from, topicCmd("after-transfer", 1), 5*time.Second); err != nil {
		t.Fatal(err)
	}
}
