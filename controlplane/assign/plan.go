package assign

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
)

// MoveKind says what a Move changes.
type MoveKind uint8

const (
	// ReplicaMove adds broker Add to the partition and, once Add has caught
	// up, removes broker Remove, so the replication factor never drops. Add
	// takes Remove's place in the replica list.
	ReplicaMove MoveKind = iota + 1
	// LeaderMove makes To the preferred leader in place of From: the two
	// swap places in the replica list and leadership is transferred.
	LeaderMove
)

// Move is one step of a rebalance plan.
type Move struct {
	Kind      MoveKind
	Partition TopicPartition
	// Add and Remove are set for a ReplicaMove.
	Add, Remove int32
	// From and To are set for a LeaderMove.
	From, To int32
}

// String reads like "orders-3: add 4, remove 1" or "orders-3: leader 1 -> 4".
func (m Move) String() string {
	switch m.Kind {
	case ReplicaMove:
		return fmt.Sprintf("%s-%d: add %d, remove %d", m.Partition.Topic, m.Partition.Partition, m.Add, m.Remove)
	case LeaderMove:
		return fmt.Sprintf("%s-%d: leader %d -> %d", m.Partition.Topic, m.Partition.Partition, m.From, m.To)
	default:
		return fmt.Sprintf("%s-%d: unknown move kind %d", m.Partition.Topic, m.Partition.Partition, m.Kind)
	}
}

// ApplyTo returns a copy of replicas with the move applied. A move that
// does not fit the list (Remove absent or Add present; To absent) leaves the
// copy unchanged.
func (m Move) ApplyTo(replicas []int32) []int32 {
	out := slices.Clone(replicas)
	switch m.Kind {
	case ReplicaMove:
		if k := slices.Index(out, m.Remove); k >= 0 && !slices.Contains(out, m.Add) {
			out[k] = m.Add
		}
	case LeaderMove:
		if k := slices.Index(out, m.To); k > 0 {
			out[0], out[k] = out[k], out[0]
		}
	}
	return out
}

// Apply returns the assignment that results from applying moves in order to
// current, which it does not modify.
func Apply(current map[TopicPartition][]int32, moves []Move) map[TopicPartition][]int32 {
	out := make(map[TopicPartition][]int32, len(current))
	for tp, replicas := range current {
		out[tp] = slices.Clone(replicas)
	}
	for _, m := range moves {
		if r, ok := out[m.Partition]; ok {
			out[m.Partition] = m.ApplyTo(r)
		}
	}
	return out
}

// Plan returns the moves that even out replica and preferred-leader counts
// over brokers, empty brokers that are decommissioning, and take preferred
// leadership away from draining ones. Replicas on brokers missing from the
// list stay where they are. Moves must run in order: replica moves first,
// then leader moves. Each partition gets at most one move per replica it
// changes and at most one leader move, and a balanced cluster gets none.
//
// The replication factor is never changed, and no move lowers the number of
// distinct racks of a partition unless emptying a decommissioning broker
// leaves no other choice. When a broker id appears twice, the first entry
// counts. A partition whose replica list names a broker twice is left
// untouched.
func Plan(brokers []Broker, current map[TopicPartition][]int32) []Move {
	v, _ := newView(firstOfEach(brokers))
	tps := slices.SortedFunc(maps.Keys(current), func(a, b TopicPartition) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	sets := make([][]int32, len(tps))
	frozen := make([]bool, len(tps))
	for i, tp := range tps {
		sets[i] = slices.Clone(current[tp])
		frozen[i] = hasDuplicate(sets[i])
	}
	rp := newReplicaPlanner(v, sets, frozen)
	rp.evacuate()
	rp.balance()

	lb := newLeaderBalancer(v, sets, map[int32]int{})
	for i, set := range sets {
		switch {
		case len(set) == 0:
		case frozen[i]:
			if v.canLead(set[0]) {
				lb.count[set[0]]++
			}
		case v.listed(set[0]) && !v.canLead(set[0]):
			lb.chooseLeader(i)
		default:
			lb.adopt(i)
		}
	}
	lb.balance()
	return diff(tps, current, sets)
}

func firstOfEach(brokers []Broker) []Broker {
	var out []Broker
	for _, b := range brokers {
		if !slices.ContainsFunc(out, func(x Broker) bool { return x.ID == b.ID }) {
			out = append(out, b)
		}
	}
	return out
}

func hasDuplicate(set []int32) bool {
	for i, b := range set {
		if slices.Contains(set[i+1:], b) {
			return true
		}
	}
	return false
}

// diff turns the planned lists into moves: one ReplicaMove per replaced
// replica, then one LeaderMove per partition whose first replica changed.
func diff(tps []TopicPartition, current map[TopicPartition][]int32, sets [][]int32) []Move {
	var replicaMoves, leaderMoves []Move
	for i, tp := range tps {
		orig, final := current[tp], sets[i]
		var removed, added []int32
		for _, b := range orig {
			if !slices.Contains(final, b) {
				removed = append(removed, b)
			}
		}
		for _, b := range final {
			if !slices.Contains(orig, b) {
				added = append(added, b)
			}
		}
		after := slices.Clone(orig)
		for j, b := range removed {
			m := Move{Kind: ReplicaMove, Partition: tp, Add: added[j], Remove: b}
			replicaMoves = append(replicaMoves, m)
			after = m.ApplyTo(after)
		}
		if len(after) > 0 && after[0] != final[0] {
			leaderMoves = append(leaderMoves, Move{Kind: LeaderMove, Partition: tp, From: after[0], To: final[0]})
		}
	}
	return append(replicaMoves, leaderMoves...)
}

// replicaPlanner moves replicas between brokers that may hold them until
// each holds its target count: the mean, rounded up for the most loaded
// ones so that as few replicas as possible move.
type replicaPlanner struct {
	v      *view
	sets   [][]int32
	frozen []bool
	count  map[int32]int
	target map[int32]int
	// on lists, per holder, the movable partitions it replicates, ascending.
	on map[int32][]int
}

func newReplicaPlanner(v *view, sets [][]int32, frozen []bool) *replicaPlanner {
	rp := &replicaPlanner{v: v, sets: sets, frozen: frozen, count: map[int32]int{},
		target: map[int32]int{}, on: map[int32][]int{}}
	total := 0
	for _, b := range v.holders {
		rp.count[b] = 0
	}
	for i, set := range sets {
		for _, b := range set {
			switch {
			case v.canHold(b):
				rp.count[b]++
				total++
				if !frozen[i] {
					rp.on[b] = insertSorted(rp.on[b], i)
				}
			case v.listed(b) && !frozen[i]:
				total++ // to be moved onto a holder
			}
		}
	}
	if len(v.holders) == 0 {
		return rp
	}
	byLoad := slices.Clone(v.holders)
	slices.SortStableFunc(byLoad, func(a, b int32) int { return cmp.Compare(rp.count[b], rp.count[a]) })
	base, extra := total/len(byLoad), total%len(byLoad)
	for k, b := range byLoad {
		rp.target[b] = base
		if k < extra {
			rp.target[b]++
		}
	}
	return rp
}

// replace puts broker b in place of the replica at sets[i][k].
func (rp *replicaPlanner) replace(i, k int, b int32) {
	old := rp.sets[i][k]
	if rp.v.canHold(old) {
		rp.count[old]--
		rp.on[old] = removeSorted(rp.on[old], i)
	}
	rp.sets[i][k] = b
	rp.count[b]++
	rp.on[b] = insertSorted(rp.on[b], i)
}

// racksAfter counts the racks of partition i if b replaced sets[i][k].
func (rp *replicaPlanner) racksAfter(i, k int, b int32) int {
	after := slices.Clone(rp.sets[i])
	after[k] = b
	return rp.v.racks(after)
}

// evacuate moves every replica off listed brokers that may not hold one, to
// the holder that keeps the most racks, then the one furthest below its
// target, then the lowest id.
func (rp *replicaPlanner) evacuate() {
	for i, set := range rp.sets {
		if rp.frozen[i] {
			continue
		}
		for k, d := range set {
			if !rp.v.listed(d) || rp.v.canHold(d) {
				continue
			}
			var best int32
			var bestKey [2]int
			found := false
			for _, b := range rp.v.holders {
				if slices.Contains(set, b) {
					continue
				}
				key := [2]int{-rp.racksAfter(i, k, b), rp.count[b] - rp.target[b]}
				if !found || slices.Compare(key[:], bestKey[:]) < 0 {
					best, bestKey, found = b, key, true
				}
			}
			if found {
				rp.replace(i, k, best)
			}
		}
	}
}

// balance moves replicas from brokers above their target to brokers below
// it, one at a time, until no such move is possible.
func (rp *replicaPlanner) balance() {
	for rp.moveOne() {
	}
}

func (rp *replicaPlanner) moveOne() bool {
	var donors, receivers []int32
	for _, b := range rp.v.holders {
		switch {
		case rp.count[b] > rp.target[b]:
			donors = append(donors, b)
		case rp.count[b] < rp.target[b]:
			receivers = append(receivers, b)
		}
	}
	gap := func(b int32) int { return max(rp.count[b]-rp.target[b], rp.target[b]-rp.count[b]) }
	byGap := func(a, b int32) int { return cmp.Compare(gap(b), gap(a)) }
	slices.SortStableFunc(donors, byGap)
	slices.SortStableFunc(receivers, byGap)
	for _, d := range donors {
		for _, r := range receivers {
			if i, k, ok := rp.findMove(d, r); ok {
				rp.replace(i, k, r)
				return true
			}
		}
	}
	return false
}

// findMove finds a partition where r can replace d without losing a rack,
// preferring one where d is a follower so that no leadership moves.
func (rp *replicaPlanner) findMove(d, r int32) (i, k int, ok bool) {
	for _, leader := range []bool{false, true} {
		for _, i := range rp.on[d] {
			set := rp.sets[i]
			k := slices.Index(set, d)
			if (k == 0) != leader || slices.Contains(set, r) {
				continue
			}
			if rp.racksAfter(i, k, r) >= rp.v.racks(set) {
				return i, k, true
			}
		}
	}
	return 0, 0, false
}
