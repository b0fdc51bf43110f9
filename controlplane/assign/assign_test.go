package assign

import (
	"errors"
	"slices"
	"testing"
)

func brokers(ids ...int32) []Broker {
	var out []Broker
	for _, id := range ids {
		out = append(out, Broker{ID: id})
	}
	return out
}

func TestAssign(t *testing.T) {
	for _, tc := range []struct {
		name       string
		brokers    []Broker
		existing   Load
		partitions int
		rf         int
		want       [][]int32
	}{
		{"guide example", brokers(1, 2, 3), Load{}, 3, 3,
			[][]int32{{1, 2, 3}, {2, 3, 1}, {3, 1, 2}}},
		{"single replica round robin", brokers(1, 2, 3), Load{}, 4, 1,
			[][]int32{{1}, {2}, {3}, {1}}},
		{"broker order does not matter", brokers(3, 1, 2), Load{}, 3, 3,
			[][]int32{{1, 2, 3}, {2, 3, 1}, {3, 1, 2}}},
		{"new broker takes new replicas first", brokers(1, 2, 3, 4),
			Load{Replicas: map[int32]int{1: 3, 2: 3, 3: 3}, Leaders: map[int32]int{1: 1, 2: 1, 3: 1}}, 2, 2,
			[][]int32{{4, 1}, {4, 2}}},
		{"decommissioning broker takes nothing", []Broker{{ID: 1}, {ID: 2, Decommissioning: true}, {ID: 3}}, Load{}, 2, 2,
			[][]int32{{1, 3}, {3, 1}}},
		{"draining broker follows but never leads", []Broker{{ID: 1, Draining: true}, {ID: 2}, {ID: 3}}, Load{}, 3, 2,
			[][]int32{{2, 1}, {3, 2}, {3, 1}}},
		{"only draining brokers still get a leader", []Broker{{ID: 1, Draining: true}, {ID: 2, Draining: true}}, Load{}, 2, 2,
			[][]int32{{1, 2}, {2, 1}}},
		{"racks come first", []Broker{{ID: 1, Rack: "a"}, {ID: 2, Rack: "a"}, {ID: 3, Rack: "b"}, {ID: 4, Rack: "b"}}, Load{}, 4, 2,
			[][]int32{{1, 3}, {2, 4}, {3, 1}, {4, 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Assign(tc.brokers, tc.existing, tc.partitions, tc.rf)
			if err != nil {
				t.Fatalf("Assign: %v", err)
			}
			if !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAssignErrors(t *testing.T) {
	for _, tc := range []struct {
		name       string
		brokers    []Broker
		partitions int
		rf         int
		want       error
	}{
		{"rf above brokers", brokers(1, 2, 3), 1, 4, ErrInvalidReplicationFactor},
		{"rf zero", brokers(1, 2, 3), 1, 0, ErrInvalidReplicationFactor},
		{"rf above holders", []Broker{{ID: 1}, {ID: 2}, {ID: 3, Decommissioning: true}}, 1, 3, ErrInvalidReplicationFactor},
		{"no brokers", nil, 1, 1, ErrInvalidReplicationFactor},
		{"no partitions", brokers(1, 2, 3), 0, 1, ErrInvalidPartitions},
		{"negative partitions", brokers(1, 2, 3), -2, 1, ErrInvalidPartitions},
		{"duplicate broker", brokers(1, 2, 2), 1, 1, ErrDuplicateBroker},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Assign(tc.brokers, Load{}, tc.partitions, tc.rf)
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestLoadOf(t *testing.T) {
	l := LoadOf(map[TopicPartition][]int32{
		{"a", 0}: {1, 2, 3},
		{"a", 1}: {2, 3, 1},
		{"b", 0}: {2},
		{"b", 1}: {},
	})
	wantReplicas := map[int32]int{1: 2, 2: 3, 3: 2}
	wantLeaders := map[int32]int{1: 1, 2: 2}
	for b := range int32(4) {
		if l.Replicas[b] != wantReplicas[b] || l.Leaders[b] != wantLeaders[b] {
			t.Fatalf("load %+v", l)
		}
	}
}

func TestMoveApply(t *testing.T) {
	tp := TopicPartition{"orders", 3}
	for _, tc := range []struct {
		move Move
		in   []int32
		want []int32
		str  string
	}{
		{Move{Kind: ReplicaMove, Partition: tp, Add: 4, Remove: 1}, []int32{1, 2, 3}, []int32{4, 2, 3}, "orders-3: add 4, remove 1"},
		{Move{Kind: ReplicaMove, Partition: tp, Add: 4, Remove: 5}, []int32{1, 2, 3}, []int32{1, 2, 3}, "orders-3: add 4, remove 5"},
		{Move{Kind: ReplicaMove, Partition: tp, Add: 2, Remove: 1}, []int32{1, 2, 3}, []int32{1, 2, 3}, "orders-3: add 2, remove 1"},
		{Move{Kind: LeaderMove, Partition: tp, From: 1, To: 3}, []int32{1, 2, 3}, []int32{3, 2, 1}, "orders-3: leader 1 -> 3"},
		{Move{Kind: LeaderMove, Partition: tp, From: 1, To: 9}, []int32{1, 2, 3}, []int32{1, 2, 3}, "orders-3: leader 1 -> 9"},
	} {
		in := slices.Clone(tc.in)
		if got := tc.move.ApplyTo(in); !slices.Equal(got, tc.want) || !slices.Equal(in, tc.in) {
			t.Errorf("%v on %v = %v (input now %v), want %v", tc.move, tc.in, got, in, tc.want)
		}
		if tc.move.String() != tc.str {
			t.Errorf("String() = %q, want %q", tc.move.String(), tc.str)
		}
	}
	cur := map[TopicPartition][]int32{tp: {1, 2, 3}}
	got := Apply(cur, []Move{{Kind: ReplicaMove, Partition: tp, Add: 4, Remove: 1}, {Kind: LeaderMove, Partition: tp, From: 4, To: 2}})
	if !slices.Equal(got[tp], []int32{2, 4, 3}) || !slices.Equal(cur[tp], []int32{1, 2, 3}) {
		t.Fatalf("Apply = %v, input now %v", got, cur)
	}
}
