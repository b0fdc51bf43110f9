package controller

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// TestAddControllerNode follows the guide's "Adding a 4th Node": every
// node restarts with the new peer in cluster.toml, then the new node
// starts. It must join the running group instead of bootstrapping its own,
// and the leader must add it as a voter.
func TestAddControllerNode(t *testing.T) {
	cl := newCluster(t, options{}, three...)
	cl.waitReady()
	if _, err := cl.propose(cl.leader(), topicCmd("before", 1), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	ln := cl.addPeer(peerSpec{id: 4})
	for _, id := range []int32{1, 2, 3} {
		cl.kill(id)
		cl.start(id, nil)
		cl.waitReady(id)
	}
	cl.start(4, ln)
	cl.waitReady(4)
	if !cl.logs.has("n4", "Peers run a metadata partition formed with other members; joining without bootstrap") {
		t.Error("node 4 did not recognise the running group")
	}
	if !cl.logs.has("n4", "Waiting for quorum (need 3/4 nodes)...") {
		t.Error("node 4 did not wait for a quorum of four")
	}

	eventually(t, 10*time.Second, func() error {
		r := cl.nodes[cl.leader()].c.raft.Load()
		f := r.GetConfiguration()
		if err := f.Error(); err != nil {
			return err
		}
		var ids []string
		for _, s := range f.Configuration().Servers {
			ids = append(ids, string(s.ID))
		}
		if len(ids) != 4 || ids[3] != strconv.Itoa(4) {
			return fmt.Errorf("__meta voters %v", ids)
		}
		return nil
	})
	if _, err := cl.propose(4, topicCmd("after", 1), 5*time.Second); err != nil {
		t.Fatalf("propose via the new node: %v", err)
	}
	st := cl.converged()
	if st.Topics["before"] == nil || st.Topics["after"] == nil {
		t.Fatalf("topics %v", st.Topics)
	}
	if got := cl.gauge(4, "cluster_size"); got != 4 {
		t.Fatalf("cluster_size on node 4: %v", got)
	}
	// The cluster id is the original group's on every node.
	for _, id := range cl.running() {
		if got := cl.nodes[id].c.Service().State().ClusterID; got != st.ClusterID || got == "" {
			t.Fatalf("node %d cluster id %q, want %q", id, got, st.ClusterID)
		}
	}
}
