package assign

import (
	"fmt"
	"slices"
	"testing"
)

// topic builds an assignment of one topic from replica lists.
func topic(name string, lists ...[]int32) map[TopicPartition][]int32 {
	out := map[TopicPartition][]int32{}
	for p, l := range lists {
		out[TopicPartition{name, int32(p)}] = l
	}
	return out
}

// rotations is the guide's layout: partition p has replicas p, p+1, p+2 of
// brokers 1..3.
func rotations(partitions int) [][]int32 {
	var out [][]int32
	for p := range partitions {
		out = append(out, []int32{int32(p%3 + 1), int32((p+1)%3 + 1), int32((p+2)%3 + 1)})
	}
	return out
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name    string
		brokers []Broker
		current map[TopicPartition][]int32
		want    []string
	}{
		{"balanced cluster needs nothing", brokers(1, 2, 3), topic("orders", rotations(6)...), nil},
		{"empty cluster needs nothing", brokers(1, 2, 3), nil, nil},
		{"fourth node joins", brokers(1, 2, 3, 4), topic("orders", rotations(6)...), []string{
			"orders-0: add 4, remove 3",
			"orders-1: add 4, remove 1",
			"orders-2: add 4, remove 2",
			"orders-3: add 4, remove 3",
			"orders-0: leader 1 -> 4",
		}},
		{"decommissioned node is emptied", []Broker{{ID: 1, Decommissioning: true}, {ID: 2}, {ID: 3}, {ID: 4}},
			topic("orders", rotations(3)...), []string{
				"orders-0: add 4, remove 1",
				"orders-1: add 4, remove 1",
				"orders-2: add 4, remove 1",
			}},
		{"draining node loses leaders only", []Broker{{ID: 1, Draining: true}, {ID: 2}, {ID: 3}},
			topic("orders", rotations(3)...), []string{"orders-0: leader 1 -> 2"}},
		{"fenced node keeps its replicas", brokers(1, 2), topic("orders", rotations(3)...), nil},
		{"fenced node's replicas stay while others move", brokers(1, 2, 4), topic("orders", rotations(3)...), []string{
			"orders-0: add 4, remove 2",
			"orders-1: add 4, remove 1",
		}},
		{"leaders even out", brokers(1, 2, 3), topic("orders", []int32{1, 2, 3}, []int32{1, 3, 2}, []int32{1, 2, 3}),
			[]string{"orders-0: leader 1 -> 2", "orders-1: leader 1 -> 3"}},
		{"moves keep racks", []Broker{{ID: 1, Rack: "a"}, {ID: 2, Rack: "b"}, {ID: 3, Rack: "a"}, {ID: 4, Rack: "b"}},
			topic("t", []int32{1, 2}, []int32{1, 2}), []string{"t-0: add 3, remove 1", "t-0: add 4, remove 2"}},
		{"a follower move that would lose a rack loses to a leader move that keeps it",
			[]Broker{{ID: 1, Rack: "a"}, {ID: 2, Rack: "b"}, {ID: 3, Rack: "a"}, {ID: 4, Rack: "b"}},
			topic("t", []int32{1, 2}, []int32{2, 4}, []int32{2, 4}), []string{"t-1: add 3, remove 2"}},
		{"partitions with a repeated replica are left alone", brokers(1, 2, 3, 4), topic("t", []int32{1, 1}, []int32{1, 2}),
			[]string{"t-1: add 3, remove 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			moves := Plan(tc.brokers, tc.current)
			var got []string
			for _, m := range moves {
				got = append(got, m.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
			if again := Plan(tc.brokers, Apply(tc.current, moves)); len(again) != 0 {
				t.Fatalf("plan is not final: then %v", again)
			}
		})
	}
}

// TestPlanManyPartitions is the guide's "add a fourth node" at a size where
// a slow plan would show.
func TestPlanManyPartitions(t *testing.T) {
	cur := map[TopicPartition][]int32{}
	for tn := range 20 {
		for p, l := range rotations(100) {
			cur[TopicPartition{fmt.Sprintf("t%02d", tn), int32(p)}] = l
		}
	}
	bs := brokers(1, 2, 3, 4, 5, 6)
	moves := Plan(bs, cur)
	after := Apply(cur, moves)
	l := LoadOf(after)
	for _, b := range bs {
		if l.Replicas[b.ID] != 1000 || l.Leaders[b.ID] < 333 || l.Leaders[b.ID] > 334 {
			t.Fatalf("broker %d: %d replicas, %d leaders", b.ID, l.Replicas[b.ID], l.Leaders[b.ID])
		}
	}
	replicaMoves := 0
	for _, m := range moves {
		if m.Kind == ReplicaMove {
			replicaMoves++
		}
	}
	if replicaMoves != 3000 {
		t.Fatalf("%d replica moves, want the minimum 3000", replicaMoves)
	}
	t.Logf("%d moves", len(moves))
}
