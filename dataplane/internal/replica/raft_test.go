package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

func TestRaftProduceReplicates(t *testing.T) {
	c := newTestCluster(t, 3, fastTimings())
	c.createTopic("orders", 3, nil)
	for part := int32(0); part < 3; part++ {
		ln, epoch := c.leader("orders", part, 10*time.Second)
		t.Logf("orders/%d: leader %d at epoch %d", part, ln.id, epoch)
		var want []string
		for i := range 20 {
			tag := fmt.Sprintf("p%d-b%d", part, i)
			res, err := produce(ln, "orders", part, makeBatch(3, tag, -1, 0, 0), -1, 5*time.Second)
			if err != nil {
				t.Fatalf("produce %s: %v", tag, err)
			}
			if res.BaseOffset != int64(3*i) || res.LastOffset != int64(3*i+2) {
				t.Fatalf("produce %s at %d-%d, want %d-%d", tag, res.BaseOffset, res.LastOffset, 3*i, 3*i+2)
			}
			for r := range 3 {
				want = append(want, fmt.Sprintf("%s/%d", tag, r))
			}
			// acks=-1 answered: a majority has the entry in its Raft log.
			g := ln.rr.groupOf(ln.rr.Partition("orders", part))
			idx := g.raft.AppliedIndex()
			have := 0
			for _, n := range c.running() {
				if n.rr.group("orders", part).raft.LastIndex() >= idx {
					have++
				}
			}
			if have < 2 {
				t.Fatalf("produce %s answered with the entry on %d replicas", tag, have)
			}
		}
		log := c.awaitIdentical("orders", part, 60)
		if got := recordValues(t, log); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("records of orders/%d:\n got %v\nwant %v", part, got, want)
		}
		for _, n := range c.running() {
			if n == ln {
				continue
			}
			_, err := produce(n, "orders", part, makeBatch(1, "x", -1, 0, 0), -1, time.Second)
			if !errors.Is(err, kerr.NotLeaderForPartition) {
				t.Fatalf("produce at follower %d: %v, want NOT_LEADER_OR_FOLLOWER", n.id, err)
			}
		}
		// The leader reported itself, its epoch and the full ISR.
		eventually(t, 10*time.Second, "leader and isr in the metadata", func() error {
			mp := c.meta.State().Partition("orders", part)
			if mp.Leader != ln.id || mp.LeaderEpoch != epoch || len(mp.ISR) != 3 {
				return fmt.Errorf("metadata says leader %d epoch %d isr %v", mp.Leader, mp.LeaderEpoch, mp.ISR)
			}
			return nil
		})
		for _, n := range c.running() {
			want := map[bool]float64{true: 1, false: 0}[n == ln]
			if v := gauge(t, n, "raft_is_leader", "orders", part); v != want {
				t.Fatalf("raft_is_leader on node %d = %v, want %v", n.id, v, want)
			}
			if v := gauge(t, n, "raft_leader", "orders", part); v != float64(ln.id) {
				t.Fatalf("raft_leader on node %d = %v, want %d", n.id, v, ln.id)
			}
		}
		if v := gauge(t, ln, "partition_isr_size", "orders", part); v != 3 {
			t.Fatalf("partition_isr_size = %v", v)
		}
		if v := gauge(t, ln, "partition_has_min_isr", "orders", part); v != 1 {
			t.Fatalf("partition_has_min_isr = %v", v)
		}
	}
	// DeleteRecords goes through the log: every replica moves its start.
	ln, _ := c.leader("orders", 1, 10*time.Second)
	low, err := ln.rr.DeleteRecords(context.Background(), ln.rr.Partition("orders", 1), 30)
	if err != nil || low != 30 {
		t.Fatalf("delete records: %d, %v", low, err)
	}
	eventually(t, 10*time.Second, "log start moves on every replica", func() error {
		for _, n := range c.running() {
			if s := n.rr.Partition("orders", 1).LogStartOffset(); s != 30 {
				return fmt.Errorf("node %d starts at %d", n.id, s)
			}
		}
		return nil
	})
}

func TestRaftLeaderFailover(t *testing.T) {
	tm := fastTimings()
	c := newTestCluster(t, 3, tm)
	c.createTopic("events", 1, nil)
	old, epoch := c.leader("events", 0, 10*time.Second)
	var acked []string
	send := func(n *testNode, i int) {
		t.Helper()
		tag := fmt.Sprint("e", i)
		if _, err := produce(n, "events", 0, makeBatch(2, tag, -1, 0, 0), -1, 5*time.Second); err != nil {
			t.Fatalf("produce %s at node %d: %v", tag, n.id, err)
		}
		acked = append(acked, tag+"/0", tag+"/1")
	}
	for i := range 10 {
		send(old, i)
	}

	c.stop(old.id)
	stopped := time.Now()
	ln, newEpoch := c.leader("events", 0, 10*tm.heartbeat)
	t.Logf("node %d leads at epoch %d, %v after node %d stopped", ln.id, newEpoch, time.Since(stopped), old.id)
	if newEpoch <= epoch {
		t.Fatalf("new leader epoch %d, old %d", newEpoch, epoch)
	}
	for i := 10; i < 20; i++ {
		send(ln, i)
	}
	log := c.awaitIdentical("events", 0, 40)
	if got := recordValues(t, log); strings.Join(got, ",") != strings.Join(acked, ",") {
		t.Fatalf("survivors hold\n %v\nwant\n %v", got, acked)
	}
	eventually(t, 10*time.Second, "metadata names the new leader", func() error {
		if mp := c.meta.State().Partition("events", 0); mp.Leader != ln.id || mp.LeaderEpoch != newEpoch {
			return fmt.Errorf("leader %d epoch %d", mp.Leader, mp.LeaderEpoch)
		}
		return nil
	})

	// The old leader comes back from its directories, follows and catches up.
	c.start(old.id, nil)
	for i := 20; i < 25; i++ {
		send(ln, i)
	}
	log = c.awaitIdentical("events", 0, 50)
	if got := recordValues(t, log); strings.Join(got, ",") != strings.Join(acked, ",") {
		t.Fatalf("after rejoin:\n %v\nwant\n %v", got, acked)
	}
	if ok, _ := c.nodes[old.id].rr.IsLeader(c.nodes[old.id].rr.Partition("events", 0)); ok {
		t.Fatalf("restarted node %d leads", old.id)
	}
}

func TestRaftSnapshotCatchUp(t *testing.T) {
	tm := fastTimings()
	// Small raft-wal segments: it drops compacted entries a whole segment
	// at a time.
	tm.snapshotThreshold, tm.trailingLogs, tm.walSegment = 16, 4, 2048
	c := newTestCluster(t, 3, tm)
	c.createTopic("snap", 1, nil)
	ln, _ := c.leader("snap", 0, 10*time.Second)
	for i := range 5 {
		if _, err := produce(ln, "snap", 0, makeBatch(4, fmt.Sprint("a", i), -1, 0, 0), -1, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	var lag *testNode
	for _, n := range c.running() {
		if n != ln {
			lag = n
			break
		}
	}
	c.awaitIdentical("snap", 0, 20)
	// Its own snapshot lets it keep its 20 offsets across the restart.
	if err := lag.rr.group("snap", 0).raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	lagLast := lag.rr.group("snap", 0).raft.LastIndex()
	c.stop(lag.id)

	for i := 5; i < 80; i++ {
		if _, err := produce(ln, "snap", 0, makeBatch(4, fmt.Sprint("a", i), -1, 0, 0), -1, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	g := ln.rr.group("snap", 0)
	eventually(t, 10*time.Second, "leader compacts its log past the stopped replica", func() error {
		first, err := g.wal.FirstIndex()
		if err != nil || first <= lagLast+1 {
			return fmt.Errorf("first index %d, stopped replica at %d: %v", first, lagLast, err)
		}
		return nil
	})

	c.start(lag.id, nil)
	c.awaitIdentical("snap", 0, 320)
	f := c.nodes[lag.id].rr.group("snap", 0).fsm
	// It copied up to the leader's snapshot, no more than the 75 batches it
	// missed (the rest came as log entries).
	if got := f.copied.Load(); got == 0 || got > 75 {
		t.Fatalf("the lagging replica copied %d batches, want 1 to 75", got)
	}
	t.Logf("the lagging replica copied %d batches", f.copied.Load())
	// It keeps following after the catch-up.
	if _, err := produce(ln, "snap", 0, makeBatch(4, "after", -1, 0, 0), -1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c.awaitIdentical("snap", 0, 324)
}

func TestRaftRestartAllNoDuplicates(t *testing.T) {
	c := newTestCluster(t, 3, fastTimings())
	c.createTopic("again", 1, nil)
	for i := range 12 {
		c.produceRetrying("again", 0, makeBatch(3, fmt.Sprint("r", i), -1, 0, 0))
	}
	c.awaitIdentical("again", 0, 36)
	// A snapshot in the middle, then more: at restart every replica cuts
	// its log back to the snapshot and Raft re-applies the rest.
	for _, n := range c.running() {
		if err := n.rr.group("again", 0).raft.Snapshot().Error(); err != nil {
			t.Fatalf("snapshot on node %d: %v", n.id, err)
		}
	}
	for i := 12; i < 20; i++ {
		c.produceRetrying("again", 0, makeBatch(3, fmt.Sprint("r", i), -1, 0, 0))
	}
	before := c.awaitIdentical("again", 0, 60)

	c.stopAll()
	for _, id := range c.ids() {
		c.start(id, nil)
	}
	after := c.awaitIdentical("again", 0, 60)
	if !bytes.Equal(before, after) {
		t.Fatalf("log changed across the restart: %d bytes before, %d after", len(before), len(after))
	}
	for _, n := range c.running() {
		if got := n.rr.group("again", 0).fsm.truncations.Load(); got != 1 {
			t.Fatalf("node %d cut its log back %d times, want once", n.id, got)
		}
	}
	res := c.produceRetrying("again", 0, makeBatch(3, "r20", -1, 0, 0))
	if res.BaseOffset != 60 {
		t.Fatalf("produce after restart at %d, want 60", res.BaseOffset)
	}
	c.awaitIdentical("again", 0, 63)
}

func TestRaftMinInsyncReplicas(t *testing.T) {
	tm := fastTimings()
	// A long leader lease keeps the leader in office after it loses its
	// followers, long enough to see its ISR shrink; a short max lag lets
	// the ISR shrink quickly.
	tm.heartbeat, tm.lease, tm.isrMaxLag = 3*time.Second, 3*time.Second, 300*time.Millisecond
	c := newTestCluster(t, 3, tm)
	c.createTopic("safe", 1, map[string]string{"min.insync.replicas": "2"})
	ln, _ := c.leader("safe", 0, 20*time.Second)
	if _, err := produce(ln, "safe", 0, makeBatch(1, "ok", -1, 0, 0), -1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "full isr", func() error {
		if v := gauge(t, ln, "partition_isr_size", "safe", 0); v != 3 {
			return fmt.Errorf("isr size %v", v)
		}
		return nil
	})
	for _, n := range c.running() {
		if n != ln {
			c.stop(n.id)
		}
	}
	// Without a quorum nothing is acknowledged, at any acks.
	for _, acks := range []int16{1, -1} {
		_, err := produce(ln, "safe", 0, makeBatch(1, "lost", -1, 0, 0), acks, 200*time.Millisecond)
		if err == nil {
			t.Fatalf("acks=%d: produce acknowledged without a quorum", acks)
		}
		t.Logf("acks=%d without quorum: %v", acks, err)
	}
	// Once the followers fall out of the ISR, acks=-1 is refused up front.
	eventually(t, 5*time.Second, "NOT_ENOUGH_REPLICAS", func() error {
		p := ln.rr.Partition("safe", 0)
		if ok, _ := ln.rr.IsLeader(p); !ok {
			t.Fatalf("node %d stopped leading before its ISR shrank", ln.id)
		}
		_, err := ln.rr.Produce(context.Background(), p, makeBatch(1, "x", -1, 0, 0), -1)
		if !errors.Is(err, kerr.NotEnoughReplicas) {
			return fmt.Errorf("produce: %v", err)
		}
		return nil
	})
	if v := gauge(t, ln, "partition_has_min_isr", "safe", 0); v != 0 {
		t.Fatalf("partition_has_min_isr = %v with one replica", v)
	}
	eventually(t, 5*time.Second, "shrunk isr in the metadata", func() error {
		if isr := c.meta.State().Partition("safe", 0).ISR; len(isr) != 1 || isr[0] != ln.id {
			return fmt.Errorf("isr %v", isr)
		}
		return nil
	})

	// One follower back: a quorum and two in-sync replicas again.
	for _, id := range c.ids() {
		if id != ln.id {
			c.start(id, nil)
			break
		}
	}
	// Batches proposed without a quorum may commit now, ahead of this one.
	res := c.produceRetrying("safe", 0, makeBatch(1, "back", -1, 0, 0))
	log := c.awaitIdentical("safe", 0, res.LastOffset+1)
	for _, v := range recordValues(t, log) {
		if strings.HasPrefix(v, "x/") {
			t.Fatalf("a refused batch was written: %v", recordValues(t, log))
		}
	}
}

func TestRaftIdempotentRetryAcrossLeaderChange(t *testing.T) {
	c := newTestCluster(t, 3, fastTimings())
	c.createTopic("idem", 1, nil)
	const pid = 4242
	first, _ := c.leader("idem", 0, 10*time.Second)
	var offsets []int64
	for seq := int32(0); seq < 3; seq++ {
		res, err := produce(first, "idem", 0, makeBatch(2, fmt.Sprint("s", seq), pid, 0, seq*2), -1, 5*time.Second)
		if err != nil || res.Duplicate {
			t.Fatalf("seq %d: %+v %v", seq*2, res, err)
		}
		offsets = append(offsets, res.BaseOffset)
	}
	// The leader moves; the client retries its last batch there.
	if err := first.rr.Transfer(context.Background(), "idem", 0, 0); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	second, _ := c.leader("idem", 0, 10*time.Second)
	if second == first {
		t.Fatalf("leadership stayed on node %d", first.id)
	}
	res, err := produce(second, "idem", 0, makeBatch(2, "s2", pid, 0, 4), -1, 5*time.Second)
	if err != nil || !res.Duplicate || res.BaseOffset != offsets[2] {
		t.Fatalf("retry at the new leader: %+v %v, want a duplicate at %d", res, err, offsets[2])
	}
	res, err = produce(second, "idem", 0, makeBatch(2, "s3", pid, 0, 6), -1, 5*time.Second)
	if err != nil || res.Duplicate || res.BaseOffset != 6 {
		t.Fatalf("next batch: %+v %v, want offset 6", res, err)
	}
	if _, err := produce(second, "idem", 0, makeBatch(2, "gap", pid, 0, 12), -1, 5*time.Second); err == nil {
		t.Fatal("a sequence gap was accepted")
	}
	// The new leader dies right after acknowledging; the retry lands on
	// the third node, which has the same producer state.
	c.stop(second.id)
	third, _ := c.leader("idem", 0, 10*time.Second)
	res, err = produce(third, "idem", 0, makeBatch(2, "s3", pid, 0, 6), -1, 5*time.Second)
	if err != nil || !res.Duplicate || res.BaseOffset != 6 {
		t.Fatalf("retry at the third leader: %+v %v, want a duplicate at 6", res, err)
	}
	log := c.awaitIdentical("idem", 0, 8)
	want := "s0/0,s0/1,s1/0,s1/1,s2/0,s2/1,s3/0,s3/1"
	if got := strings.Join(recordValues(t, log), ","); got != want {
		t.Fatalf("log holds %s, want %s", got, want)
	}
}

func TestRaftTransferAll(t *testing.T) {
	c := newTestCluster(t, 3, fastTimings())
	c.createTopic("move", 4, nil)
	for part := int32(0); part < 4; part++ {
		c.leader("move", part, 10*time.Second)
	}
	// Move every leadership to node 1 first, so it has all four to give up.
	n1 := c.nodes[1]
	for part := int32(0); part < 4; part++ {
		ln, _ := c.leader("move", part, 10*time.Second)
		if ln != n1 {
			if err := ln.rr.Transfer(context.Background(), "move", part, 1); err != nil {
				t.Fatalf("transfer move/%d to node 1: %v", part, err)
			}
		}
		if ln, _ := c.leader("move", part, 10*time.Second); ln != n1 {
			t.Fatalf("move/%d is led by node %d after a transfer to node 1", part, ln.id)
		}
	}
	// A client keeps producing with retries while node 1 hands off.
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 40; i++ {
			if _, err := c.tryProduce("move", int32(i%4), makeBatch(1, fmt.Sprint("m", i), -1, 0, 0), 20*time.Second); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	if err := n1.rr.TransferAll(context.Background()); err != nil {
		t.Fatalf("transfer all: %v", err)
	}
	for part := int32(0); part < 4; part++ {
		p := n1.rr.Partition("move", part)
		if ok, _ := n1.rr.IsLeader(p); ok {
			t.Fatalf("node 1 still leads move/%d", part)
		}
		ln, epoch := c.leader("move", part, 10*time.Second)
		if ln == n1 {
			t.Fatalf("node 1 leads move/%d again", part)
		}
		eventually(t, 10*time.Second, "metadata follows the transfer", func() error {
			if mp := c.meta.State().Partition("move", part); mp.Leader != ln.id || mp.LeaderEpoch != epoch {
				return fmt.Errorf("move/%d: metadata says %d at %d", part, mp.Leader, mp.LeaderEpoch)
			}
			return nil
		})
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	total := 0
	for part := int32(0); part < 4; part++ {
		total += len(recordValues(t, c.awaitIdentical("move", part, 10)))
	}
	if total != 40 {
		t.Fatalf("%d records, want 40", total)
	}
}

// TestRaftReassignment moves a partition from nodes 1,2 to nodes 2,3 the
// way a rebalance does: add the new replica, then drop the old one.
func TestRaftReassignment(t *testing.T) {
	c := newTestCluster(t, 3, fastTimings())
	c.createTopicOn("re", [][]int32{{1, 2}}, nil)
	for i := range 10 {
		c.produceRetrying("re", 0, makeBatch(2, fmt.Sprint("a", i), -1, 0, 0))
	}
	c.awaitIdentical("re", 0, 20)
	if c.nodes[3].rr.Partition("re", 0) != nil {
		t.Fatal("node 3 hosts a replica it was not assigned")
	}
	setReplicas := func(reps []int32) {
		t.Helper()
		mp := c.meta.State().Partition("re", 0)
		if _, err := c.meta.Propose(context.Background(), &metadata.Command{PartitionState: &metadata.PartitionStateCmd{
			Topic: "re", Leader: mp.Leader, LeaderEpoch: mp.LeaderEpoch, ISR: mp.ISR, Replicas: reps,
		}}); err != nil {
			t.Fatal(err)
		}
	}
	voters := func() ([]int32, error) {
		ln, _ := c.leader("re", 0, 10*time.Second)
		g := ln.rr.group("re", 0)
		if g == nil {
			return nil, fmt.Errorf("node %d just closed its replica", ln.id)
		}
		f := g.raft.GetConfiguration()
		if err := f.Error(); err != nil {
			return nil, err
		}
		var ids []int32
		for _, s := range f.Configuration().Servers {
			id, _ := nodeID(s.ID)
			ids = append(ids, id)
		}
		return ids, nil
	}

	setReplicas([]int32{1, 2, 3})
	eventually(t, 10*time.Second, "node 3 joins the group", func() error {
		ids, err := voters()
		if err != nil || !sameIDs(ids, []int32{1, 2, 3}) {
			return fmt.Errorf("voters %v: %v", ids, err)
		}
		return nil
	})
	c.produceRetrying("re", 0, makeBatch(2, "b", -1, 0, 0))
	c.awaitIdentical("re", 0, 22)

	setReplicas([]int32{2, 3})
	eventually(t, 10*time.Second, "node 1 leaves the group", func() error {
		ids, err := voters()
		if err != nil || !sameIDs(ids, []int32{2, 3}) {
			return fmt.Errorf("voters %v: %v", ids, err)
		}
		if c.nodes[1].rr.Partition("re", 0) != nil {
			return errors.New("node 1 still hosts its replica")
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(c.nodes[1].dir, "re-0")); !os.IsNotExist(err) {
		t.Fatalf("node 1 kept the replica's directory: %v", err)
	}
	c.produceRetrying("re", 0, makeBatch(2, "c", -1, 0, 0))
	log := c.awaitIdentical("re", 0, 24)
	if n := len(recordValues(t, log)); n != 24 {
		t.Fatalf("%d records, want 24", n)
	}
}

// TestRaftFailureDetectorFailsOverFast: with heartbeat timeouts of 4 s a
// follower alone would wait at least 4 s before it campaigns; the failure
// detector notices the stopped leader and has a new one elected well
// before that.
func TestRaftFailureDetectorFailsOverFast(t *testing.T) {
	tm := detectorTimings()
	c := newTestCluster(t, 3, tm)
	c.createTopic("events", 2, nil)
	old, _ := c.leader("events", 0, 30*time.Second)
	c.leader("events", 1, 30*time.Second)
	if _, err := produce(old, "events", 0, makeBatch(2, "before", -1, 0, 0), -1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// While every node answers its probes, no peer is suspected and every
	// replica runs the normal timeouts.
	eventually(t, 10*time.Second, "healthy cluster on normal timeouts", func() error {
		for _, n := range c.running() {
			n.rr.det.mu.Lock()
			suspects := len(n.rr.det.suspects)
			n.rr.det.mu.Unlock()
			if suspects > 0 {
				return fmt.Errorf("node %d suspects %d peers", n.id, suspects)
			}
			if hb := n.rr.group("events", 0).raft.ReloadableConfig().HeartbeatTimeout; hb != tm.heartbeat {
				return fmt.Errorf("node %d: heartbeat timeout %v", n.id, hb)
			}
		}
		return nil
	})

	c.stop(old.id)
	stopped := time.Now()
	ln, _ := c.leader("events", 0, 10*time.Second)
	took := time.Since(stopped)
	t.Logf("node %d leads %v after node %d stopped", ln.id, took, old.id)
	if took >= tm.heartbeat {
		t.Fatalf("failover took %v, no faster than the %v heartbeat timeout", took, tm.heartbeat)
	}
	if _, err := produce(ln, "events", 0, makeBatch(2, "after", -1, 0, 0), -1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// Once the group has its new leader, its normal timeouts come back.
	g := ln.rr.group("events", 0)
	eventually(t, 5*time.Second, "normal timeouts restored", func() error {
		if hb := g.raft.ReloadableConfig().HeartbeatTimeout; hb != tm.heartbeat {
			return fmt.Errorf("heartbeat timeout %v", hb)
		}
		return nil
	})
}

// A new partition's group elects its first replica within the fast
// timeout, not the normal heartbeat timeout (Raft's first election waits
// one to two of those), and a produce sent to that replica before the
// election is held until it leads instead of being refused.
func TestRaftNewPartitionElectsFirstReplicaFast(t *testing.T) {
	tm := detectorTimings()
	c := newTestCluster(t, 3, tm)
	created := time.Now()
	c.createTopic("fresh", 3, nil)
	top := c.meta.State().Topics["fresh"]
	for part, mp := range top.Partitions {
		first := c.nodes[mp.Replicas[0]]
		if _, err := produce(first, "fresh", int32(part), makeBatch(1, "early", -1, 0, 0), -1, 10*time.Second); err != nil {
			t.Fatalf("partition %d: produce to node %d before its first election: %v", part, first.id, err)
		}
		ln, _ := c.leader("fresh", int32(part), 10*time.Second)
		if ln.id != first.id {
			t.Fatalf("partition %d: node %d leads, want its first replica %d", part, ln.id, first.id)
		}
	}
	took := time.Since(created)
	t.Logf("3 new partitions led by their first replicas %v after creation", took)
	if took >= tm.heartbeat {
		t.Fatalf("first elections took %v, no faster than the %v heartbeat timeout", took, tm.heartbeat)
	}
	for part, mp := range top.Partitions {
		g := c.nodes[mp.Replicas[0]].rr.group("fresh", int32(part))
		eventually(t, 5*time.Second, "normal timeouts restored", func() error {
			if hb := g.raft.ReloadableConfig().HeartbeatTimeout; hb != tm.heartbeat {
				return fmt.Errorf("partition %d: heartbeat timeout %v", part, hb)
			}
			return nil
		})
	}
}

// A node that hears from no peer at all is likelier overloaded or cut off
// than the last one standing, and could not win a vote anyway: its groups
// keep their normal timeouts instead of campaigning fast.
func TestRaftNoFastTimeoutsWhenEveryPeerIsSuspect(t *testing.T) {
	tm := detectorTimings()
	c := newTestCluster(t, 3, tm)
	c.createTopic("lonely", 1, nil)
	ln, _ := c.leader("lonely", 0, 30*time.Second)
	var survivor *testNode
	for _, n := range c.running() {
		if n.id != ln.id {
			survivor = n
		}
	}
	g := survivor.rr.group("lonely", 0)
	eventually(t, 10*time.Second, "survivor follows the leader", func() error {
		if _, id := g.raft.LeaderWithID(); id != serverID(ln.id) {
			return fmt.Errorf("leader %q", id)
		}
		return nil
	})
	for _, n := range c.running() {
		if n.id != survivor.id {
			c.stop(n.id)
		}
	}
	d := survivor.rr.det
	eventually(t, 10*time.Second, "both peers suspected", func() error {
		d.mu.Lock()
		defer d.mu.Unlock()
		if len(d.suspects) != 2 {
			return fmt.Errorf("suspects %v", d.suspects)
		}
		return nil
	})
	d.sweep()
	if hb := g.raft.ReloadableConfig().HeartbeatTimeout; hb != tm.heartbeat {
		t.Fatalf("heartbeat timeout %v with every peer suspected, want the normal %v", hb, tm.heartbeat)
	}
}
