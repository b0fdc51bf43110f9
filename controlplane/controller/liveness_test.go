package controller

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

// brokerAlive waits until node on's image shows broker id with the given
// liveness.
func (cl *cluster) brokerAlive(on, id int32, alive bool, within time.Duration) {
	cl.t.Helper()
	eventually(cl.t, within, func() error {
		b := cl.nodes[on].c.Service().State().Brokers[id]
		if b == nil || b.Alive != alive {
			return fmt.Errorf("broker %d on node %d: %+v, want alive=%v", id, on, b, alive)
		}
		return nil
	})
}

func TestBrokerLiveness(t *testing.T) {
	cl := newCluster(t, options{heartbeat: 100 * time.Millisecond},
		peerSpec{id: 1}, peerSpec{id: 2}, peerSpec{id: 3}, peerSpec{id: 4, roles: []string{"broker"}})
	cl.waitReady()
	leader := cl.leader()

	// The broker-only node runs no replica, registers, and follows the
	// image through the watch stream.
	n4 := cl.nodes[4].c
	if n4.raft.Load() != nil || n4.IsLeader() {
		t.Fatal("broker-only node runs a __meta replica")
	}
	cl.brokerAlive(leader, 4, true, 5*time.Second)
	cl.brokerAlive(4, 4, true, 5*time.Second)
	if !cl.logs.has("n4", "Creating ClusterCoordinator for node 4 with 3 peers") {
		t.Error("node 4 did not log its coordinator line")
	}

	// Its proposals are forwarded and read back through the watch.
	if _, err := cl.propose(4, topicCmd("from-broker", 1), 5*time.Second); err != nil {
		t.Fatalf("propose via broker-only node: %v", err)
	}
	if n4.Service().State().Topics["from-broker"] == nil {
		t.Fatal("broker-only node does not see its own write")
	}
	if _, err := cl.propose(4, topicCmd("from-broker", 1), 5*time.Second); !errors.Is(err, metadata.ErrTopicExists) {
		t.Fatalf("duplicate via broker-only node: %v", err)
	}
	if got := cl.gauge(4, "cluster_quorum_size"); got != 3 {
		t.Errorf("broker-only node cluster_quorum_size %v, want 3", got)
	}

	// Its heartbeats stop: the leader fences it after three intervals.
	stopped := time.Now()
	cl.kill(4)
	cl.brokerAlive(leader, 4, false, 5*time.Second)
	t.Logf("broker 4 marked dead %v after it stopped", time.Since(stopped))
	// The last heartbeat came at most one interval before the stop.
	if d := time.Since(stopped); d < (missedHeartbeats-1)*cl.opts.heartbeat {
		t.Fatalf("broker 4 marked dead %v after its last heartbeat could have been sent", d)
	}
	cl.converged()

	// Heartbeats resume: alive again.
	cl.start(4, nil)
	cl.waitReady(4)
	cl.brokerAlive(leader, 4, true, 5*time.Second)
	cl.brokerAlive(4, 4, true, 5*time.Second)

	// A combined node cut off from the others is fenced too, and comes
	// back when the network heals.
	leader = cl.leader()
	f := cl.follower(leader)
	for _, id := range cl.running() {
		if id != f {
			cl.nodes[id].mux.Block(cl.addrs[f])
			cl.nodes[f].mux.Block(cl.addrs[id])
		}
	}
	cl.brokerAlive(leader, f, false, 5*time.Second)
	for _, id := range cl.running() {
		if id != f {
			cl.nodes[id].mux.Unblock(cl.addrs[f])
			cl.nodes[f].mux.Unblock(cl.addrs[id])
		}
	}
	cl.brokerAlive(leader, f, true, 5*time.Second)
	st := cl.converged()
	for _, id := range []int32{1, 2, 3, 4} {
		if b := st.Brokers[id]; b == nil || !b.Alive {
			t.Fatalf("broker %d after healing: %+v", id, b)
		}
	}
}
