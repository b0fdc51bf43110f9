package raftnet

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// startCluster starts three muxes and one bootstrapped Raft group on them.
func startCluster(t *testing.T, group string, o raftOpts) ([]*Mux, []*node) {
	t.Helper()
	muxes := []*Mux{newTestMux(t, "127.0.0.1:0"), newTestMux(t, "127.0.0.1:0"), newTestMux(t, "127.0.0.1:0")}
	peers := servers(muxes)
	o.bootstrap = true
	nodes := make([]*node, len(muxes))
	for i, m := range muxes {
		nodes[i] = startNode(t, m, group, peers[i].ID, peers, o)
	}
	return muxes, nodes
}

func TestRaftThreeNodesReplicate(t *testing.T) {
	checkGoroutines(t)
	muxes, nodes := startCluster(t, "__meta", raftOpts{})
	applyN(t, nodes, 0, 200, 64)
	// Entries of a few KiB and larger go out as separate parts.
	applyN(t, nodes, 200, 20, 64<<10)
	waitFSMs(t, nodes, 220, 10*time.Second)
	leader := waitLeader(t, nodes, 10*time.Second)
	t.Logf("leader is node %d", leader)
	for i, m := range muxes {
		st := m.Stats()
		t.Logf("mux %d: %+v", i, st)
		if st.DialedConns > 4 {
			t.Errorf("mux %d dialed %d connections for two peers", i, st.DialedConns)
		}
	}
	// Leadership transfer exercises TimeoutNow.
	if err := nodes[leader].raft.LeadershipTransfer().Error(); err != nil {
		t.Fatalf("leadership transfer: %v", err)
	}
	next := waitLeader(t, nodes, 10*time.Second)
	if next == leader {
		t.Fatalf("leadership stayed on node %d", leader)
	}
	applyN(t, nodes, 220, 10, 64)
	waitFSMs(t, nodes, 230, 10*time.Second)
}

// TestRaftManyGroupsShareConnections runs 200 groups on three muxes: all
// elect leaders and replicate over at most two connections per direction
// per peer pair.
func TestRaftManyGroupsShareConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("600 Raft instances")
	}
	checkGoroutines(t)
	const groups = 200
	muxes := []*Mux{newTestMux(t, "127.0.0.1:0"), newTestMux(t, "127.0.0.1:0"), newTestMux(t, "127.0.0.1:0")}
	peers := servers(muxes)
	// Partition-group timings: slow heartbeats, a long commit tick.
	o := raftOpts{bootstrap: true, config: func(c *raft.Config) {
		c.HeartbeatTimeout = time.Second
		c.ElectionTimeout = time.Second
		c.LeaderLeaseTimeout = 500 * time.Millisecond
		c.CommitTimeout = time.Second
	}}
	all := make([][]*node, groups)
	start := time.Now()
	for g := range groups {
		name := fmt.Sprintf("topic-%d", g)
		for i, m := range muxes {
			all[g] = append(all[g], startNode(t, m, name, peers[i].ID, peers, o))
		}
	}
	for g := range groups {
		waitLeader(t, all[g], 30*time.Second)
	}
	t.Logf("%d groups elected leaders in %v", groups, time.Since(start))

	// One entry per group, concurrently, then all FSMs agree.
	var wg sync.WaitGroup
	errs := make(chan error, groups)
	for g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := applyOne(all[g], g, 32, 30*time.Second); err != nil {
				errs <- fmt.Errorf("group %d: %w", g, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for g := range groups {
		waitFSMs(t, all[g], 1, 10*time.Second)
	}

	var dialed uint64
	for i, m := range muxes {
		st := m.Stats()
		t.Logf("mux %d: %+v, %.1f frames per flush", i, st, float64(st.FramesSent)/float64(max(st.Flushes, 1)))
		dialed += st.DialedConns
		// Two peers, two lanes each, both directions.
		if st.OpenConns > 8 {
			t.Errorf("mux %d has %d open connections, want at most 8", i, st.OpenConns)
		}
	}
	if dialed > 12 || dialed < 6 {
		t.Fatalf("%d connections dialed in total, want 6..12 (3 pairs x 2 directions x 2 lanes)", dialed)
	}
}

// TestRaftLeaderCrashAndRestart closes the leader's mux (its node vanishes
// from the network), checks that the others elect a leader and go on, then
// restarts the node on the same address with its stores and lets it catch up.
func TestRaftLeaderCrashAndRestart(t *testing.T) {
	checkGoroutines(t)
	muxes, nodes := startCluster(t, "g", raftOpts{})
	peers := servers(muxes)
	applyN(t, nodes, 0, 50, 100)
	waitFSMs(t, nodes, 50, 10*time.Second)
	old := waitLeader(t, nodes, 10*time.Second)

	crashed := nodes[old]
	addr := muxes[old].LocalAddr()
	if err := muxes[old].Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	survivors := append([]*node(nil), nodes...)
	survivors[old] = nil
	leader := waitLeader(t, survivors, 10*time.Second)
	t.Logf("node %d took over %v after the crash", leader, time.Since(start))
	applyN(t, survivors, 50, 50, 100)
	crashed.shutdown()

	// Restart on the same address, with the same (in-memory) stores.
	m := newTestMux(t, addr)
	restarted := startNode(t, m, "g", peers[old].ID, peers, raftOpts{stores: crashed})
	nodes[old] = restarted
	applyN(t, nodes, 100, 10, 100)
	waitFSMs(t, nodes, 110, 10*time.Second)
	waitLeader(t, nodes, 10*time.Second)
}

// TestRaftSnapshotInstall: a replica that joins after the leader truncated
// its log behind a snapshot is caught up by InstallSnapshot over the mux.
// Until its group exists, its peers' requests get ErrUnknownGroup answers.
func TestRaftSnapshotInstall(t *testing.T) {
	checkGoroutines(t)
	muxes := []*Mux{newTestMux(t, "127.0.0.1:0"), newTestMux(t, "127.0.0.1:0"), newTestMux(t, "127.0.0.1:0")}
	peers := servers(muxes)
	o := raftOpts{bootstrap: true, config: func(c *raft.Config) {
		c.SnapshotThreshold = 32
		c.TrailingLogs = 8
		c.SnapshotInterval = 50 * time.Millisecond
	}}
	nodes := []*node{startNode(t, muxes[0], "g", peers[0].ID, peers, o), startNode(t, muxes[1], "g", peers[1].ID, peers, o), nil}
	// 300 entries of 10 KiB: a 3 MiB snapshot, several windows of chunks.
	applyN(t, nodes, 0, 300, 10<<10)
	eventually(t, 10*time.Second, func() error {
		for i, n := range nodes[:2] {
			snaps, err := n.snaps.List()
			if err != nil {
				return err
			}
			if len(snaps) == 0 || snaps[0].Index < 250 {
				return fmt.Errorf("node %d has not snapshotted recent entries yet", i)
			}
		}
		return nil
	})
	before := muxes[2].Stats().BytesReceived

	nodes[2] = startNode(t, muxes[2], "g", peers[2].ID, peers, o)
	waitFSMs(t, nodes, 300, 15*time.Second)
	if nodes[2].fsm.restored() == 0 {
		t.Fatal("the late replica caught up without installing a snapshot")
	}
	if got := muxes[2].Stats().BytesReceived - before; got < 300*10<<10 {
		t.Fatalf("late replica received %d bytes, less than the snapshot", got)
	}
	applyN(t, nodes, 300, 10, 100)
	waitFSMs(t, nodes, 310, 10*time.Second)
}

// TestRaftPartitionHeal isolates the leader with Block: the majority elects a
// new leader and commits, the old leader cannot; after healing it follows
// and catches up.
func TestRaftPartitionHeal(t *testing.T) {
	checkGoroutines(t)
	muxes, nodes := startCluster(t, "g", raftOpts{})
	applyN(t, nodes, 0, 20, 100)
	waitFSMs(t, nodes, 20, 10*time.Second)
	old := waitLeader(t, nodes, 10*time.Second)

	for i, m := range muxes {
		if i != old {
			muxes[old].Block(m.LocalAddr())
		}
	}
	majority := append([]*node(nil), nodes...)
	majority[old] = nil
	waitLeader(t, majority, 10*time.Second)
	applyN(t, majority, 20, 20, 100)
	// The isolated leader steps down and cannot commit.
	eventually(t, 5*time.Second, func() error {
		if s := nodes[old].raft.State(); s == raft.Leader {
			return errors.New("isolated node still leader")
		}
		return nil
	})
	if err := nodes[old].raft.Apply([]byte("lost"), 200*time.Millisecond).Error(); err == nil {
		t.Fatal("isolated node committed an entry")
	}
	if n := nodes[old].fsm.count(); n != 20 {
		t.Fatalf("isolated node applied %d entries, want 20", n)
	}

	for i, m := range muxes {
		if i != old {
			muxes[old].Unblock(m.LocalAddr())
		}
	}
	waitFSMs(t, nodes, 40, 10*time.Second)
	applyN(t, nodes, 40, 10, 100)
	waitFSMs(t, nodes, 50, 10*time.Second)
}
