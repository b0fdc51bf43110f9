package controller

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

func TestSnapshotCatchUp(t *testing.T) {
	cl := newCluster(t, options{snapshotThreshold: 16, snapshotInterval: 50 * time.Millisecond, segmentSize: 64 << 10}, three...)
	cl.waitReady()
	leader := cl.leader()
	if _, err := cl.propose(leader, topicCmd("big", 1), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	down := cl.follower(leader)
	cl.converged()
	lastSeen := cl.nodes[down].c.raft.Load().LastIndex()
	cl.kill(down)

	// Large commands while the follower is away, until the leader has
	// snapshotted and deleted the log segments the follower would need.
	var proposer int32
	for _, id := range cl.running() {
		if id != leader {
			proposer = id
		}
	}
	i := 0
	eventually(t, 20*time.Second, func() error {
		for range 8 {
			i++
			cmd := &metadata.Command{AlterConfigs: &metadata.AlterConfigsCmd{
				Topic: "big", Set: map[string]string{"k": fmt.Sprintf("%d:%s", i, strings.Repeat("x", 8<<10))},
			}}
			if _, err := cl.propose(proposer, cmd, 5*time.Second); err != nil {
				return err
			}
		}
		// Whichever node leads must lack the entry.
		for _, id := range cl.running() {
			var l raft.Log
			if err := cl.nodes[id].c.stores.wal.GetLog(lastSeen+1, &l); err == nil {
				return fmt.Errorf("node %d still holds entry %d", id, lastSeen+1)
			}
		}
		return nil
	})
	first, _ := cl.nodes[leader].c.stores.wal.FirstIndex()
	t.Logf("%d commands while node %d was down (its last index %d, leader log from %d)", i, down, lastSeen, first)

	// The follower restarts with a log the leader cannot continue: it must
	// install the leader's snapshot.
	n := cl.start(down, nil)
	cl.waitReady(down)
	st := cl.converged()
	if got := n.c.fsm.restores.Load() - n.c.restoresAt; got < 1 {
		t.Fatalf("node %d caught up without installing a snapshot", down)
	}
	if v := st.Topics["big"].Configs["k"]; !strings.HasPrefix(v, fmt.Sprintf("%d:", i)) {
		t.Fatalf("config after catch-up starts with %.10q, want command %d", v, i)
	}
	t.Logf("node %d at index %d after installing a snapshot", down, st.Index)

	// The restored replica keeps applying new commands.
	if _, err := cl.propose(down, allocCmd(1), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	cl.converged()
}
