package replica

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
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

