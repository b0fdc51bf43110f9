package assign

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// The property tests draw many random clusters from fixed seeds, so they
// are deterministic, and check the invariants Assign and Plan promise.

const rounds = 3000

// randomBrokers returns 1-7 brokers, on racks when withRacks, with flags set
// now and then when withFlags.
func randomBrokers(r *rand.Rand, withRacks, withFlags bool) []Broker {
	n := 1 + r.IntN(7)
	racks := 1 + r.IntN(3)
	var out []Broker
	for i := range n {
		b := Broker{ID: int32(i + 1)}
		if withRacks {
			b.Rack = fmt.Sprintf("rack%d", r.IntN(racks))
		}
		if withFlags {
			b.Draining = r.IntN(6) == 0
			b.Decommissioning = r.IntN(6) == 0
		}
		out = append(out, b)
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// randomAssignment places 1-12 partitions of replication factor 1-3 on the
// first few broker ids, sometimes including one id that is not listed (a
// fenced broker).
func randomAssignment(r *rand.Rand, n int) map[TopicPartition][]int32 {
	pool := 1 + r.IntN(n+1) // ids 1..pool; pool may exceed n by one
	rf := 1 + r.IntN(min(3, pool))
	out := map[TopicPartition][]int32{}
	for p := range 1 + r.IntN(12) {
		perm := r.Perm(pool)[:rf]
		var set []int32
		for _, i := range perm {
			set = append(set, int32(i+1))
		}
		out[TopicPartition{fmt.Sprintf("t%d", p%3), int32(p)}] = set
	}
	return out
}

func byID(bs []Broker) map[int32]Broker {
	m := map[int32]Broker{}
	for _, b := range bs {
		m[b.ID] = b
	}
	return m
}

func holdersOf(bs []Broker) []int32 {
	var out []int32
	for _, b := range bs {
		if !b.Decommissioning {
			out = append(out, b.ID)
		}
	}
	slices.Sort(out)
	return out
}

func canLead(b Broker, ok bool) bool { return ok && !b.Draining && !b.Decommissioning }

// spread is max-min of counts over ids.
func spread(counts map[int32]int, ids []int32) int {
	lo, hi := 1<<30, -1
	for _, id := range ids {
		lo, hi = min(lo, counts[id]), max(hi, counts[id])
	}
	return hi - lo
}

func rackKey(bs map[int32]Broker, id int32) string {
	if b, ok := bs[id]; ok && b.Rack != "" {
		return b.Rack
	}
	return fmt.Sprintf("own-%d", id)
}

func distinctRacks(bs map[int32]Broker, set []int32) int {
	seen := map[string]bool{}
	for _, id := range set {
		seen[rackKey(bs, id)] = true
	}
	return len(seen)
}

// bestLeaderCost returns the least sum of squared leader counts reachable by
// choosing, for each of `choices`, one of its candidates as leader, on top
// of the base counts. It tries every combination, so it answers ok=false
// when there are too many.
func bestLeaderCost(base map[int32]int, choices [][]int32) (cost int, ok bool) {
	combinations := 1
	for _, c := range choices {
		if combinations *= len(c); combinations > 20000 {
			return 0, false
		}
	}
	counts := maps.Clone(base)
	best := -1
	var walk func(i int)
	walk = func(i int) {
		if i == len(choices) {
			c := 0
			for _, n := range counts {
				c += n * n
			}
			if best < 0 || c < best {
				best = c
			}
			return
		}
		for _, b := range choices[i] {
			counts[b]++
			walk(i + 1)
			counts[b]--
		}
	}
	walk(0)
	return best, true
}

func squares(counts map[int32]int) int {
	c := 0
	for _, n := range counts {
		c += n * n
	}
	return c
}

func TestAssignProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range rounds {
		withRacks, withFlags, withLoad := round%2 == 1, round%3 == 2, round%5 >= 3
		bs := randomBrokers(r, withRacks, withFlags)
		holders := holdersOf(bs)
		if len(holders) == 0 {
			continue
		}
		var existing Load
		if withLoad {
			existing = LoadOf(randomAssignment(r, len(bs)))
		}
		rf := 1 + r.IntN(len(holders))
		partitions := 1 + r.IntN(9)
		name := fmt.Sprintf("round %d: brokers %+v, load %v, %d partitions, rf %d", round, bs, existing, partitions, rf)
		sets, err := Assign(bs, existing, partitions, rf)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkAssign(t, name, bs, existing, sets, partitions, rf)

		shuffled := slices.Clone(bs)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		again, _ := Assign(shuffled, existing, partitions, rf)
		if !slices.EqualFunc(sets, again, slices.Equal) {
			t.Fatalf("%s: not deterministic: %v then %v", name, sets, again)
		}
		if _, err := Assign(bs, existing, partitions, len(holders)+1); err == nil {
			t.Fatalf("%s: rf above holders accepted", name)
		}
	}
}

func checkAssign(t *testing.T, name string, bs []Broker, existing Load, sets [][]int32, partitions, rf int) {
	t.Helper()
	info := byID(bs)
	holders := holdersOf(bs)
	anyLeader := slices.ContainsFunc(holders, func(id int32) bool { return canLead(info[id], true) })
	rackSet := map[string]bool{}
	var leaders []int32
	for _, id := range holders {
		rackSet[rackKey(info, id)] = true
		if canLead(info[id], true) {
			leaders = append(leaders, id)
		}
	}
	if len(sets) != partitions {
		t.Fatalf("%s: %d lists", name, len(sets))
	}
	replicas, leading := map[int32]int{}, map[int32]int{}
	for _, id := range holders {
		replicas[id] = existing.Replicas[id]
		leading[id] = existing.Leaders[id]
	}
	var choices [][]int32
	for _, set := range sets {
		if len(set) != rf || hasDuplicate(set) {
			t.Fatalf("%s: bad list %v", name, set)
		}
		for _, id := range set {
			if !slices.Contains(holders, id) {
				t.Fatalf("%s: %v uses broker %d", name, set, id)
			}
			replicas[id]++
		}
		if anyLeader && !canLead(info[set[0]], true) {
			t.Fatalf("%s: %v is led by a broker that may not lead", name, set)
		}
		leading[set[0]]++
		if want := min(rf, len(rackSet)); distinctRacks(info, set) != want {
			t.Fatalf("%s: %v spans %d racks, want %d", name, set, distinctRacks(info, set), want)
		}
		choices = append(choices, slices.DeleteFunc(slices.Clone(set), func(id int32) bool { return !canLead(info[id], true) }))
	}
	plain := len(rackSet) == len(holders) && len(leaders) == len(holders)
	if plain {
		before := map[int32]int{}
		for _, id := range holders {
			before[id] = existing.Replicas[id]
		}
		if s := spread(replicas, holders); s > max(1, spread(before, holders)) {
			t.Fatalf("%s: replica counts %v (before %v)", name, replicas, before)
		}
	}
	if anyLeader {
		base := map[int32]int{}
		for _, id := range leaders {
			base[id] = existing.Leaders[id]
		}
		got := map[int32]int{}
		for _, id := range leaders {
			got[id] = leading[id]
		}
		if best, ok := bestLeaderCost(base, choices); ok && squares(got) != best {
			t.Fatalf("%s: leader counts %v are not as even as %v allow", name, got, sets)
		}
		if plain && len(existing.Leaders) == 0 && spread(got, leaders) > 1 {
			t.Fatalf("%s: leader counts %v", name, got)
		}
	}
}

func TestPlanProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := range rounds {
		withRacks, withFlags := round%2 == 1, round%3 == 2
		bs := randomBrokers(r, withRacks, withFlags)
		cur := randomAssignment(r, len(bs))
		name := fmt.Sprintf("round %d: brokers %+v, assignment %v", round, bs, cur)
		snapshot := Apply(cur, nil)
		moves := Plan(bs, cur)
		if !maps.EqualFunc(cur, snapshot, slices.Equal) {
			t.Fatalf("%s: Plan changed its input", name)
		}
		checkPlan(t, name, bs, cur, moves)

		shuffled := slices.Clone(bs)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if again := Plan(shuffled, cur); !slices.Equal(moves, again) {
			t.Fatalf("%s: not deterministic: %v then %v", name, moves, again)
		}
	}
}

func checkPlan(t *testing.T, name string, bs []Broker, cur map[TopicPartition][]int32, moves []Move) {
	t.Helper()
	info := byID(bs)
	holders := holdersOf(bs)
	after := map[TopicPartition][]int32{}
	for tp, set := range cur {
		after[tp] = slices.Clone(set)
	}
	maxRF, decom, leaderSeen := 0, 0, false
	for _, m := range moves {
		set := after[m.Partition]
		next := m.ApplyTo(set)
		if slices.Equal(set, next) {
			t.Fatalf("%s: move %v does not apply to %v", name, m, set)
		}
		switch m.Kind {
		case ReplicaMove:
			if leaderSeen {
				t.Fatalf("%s: replica move %v after a leader move", name, m)
			}
			if !slices.Contains(holders, m.Add) {
				t.Fatalf("%s: %v adds a broker that may not hold replicas", name, m)
			}
		case LeaderMove:
			leaderSeen = true
			if !canLead(info[m.To], slices.Contains(holders, m.To)) {
				t.Fatalf("%s: %v hands leadership to a broker that may not lead", name, m)
			}
		}
		after[m.Partition] = next
	}
	if !maps.EqualFunc(after, Apply(cur, moves), slices.Equal) {
		t.Fatalf("%s: Apply disagrees with applying moves one by one", name)
	}
	for tp, set := range after {
		before := cur[tp]
		maxRF = max(maxRF, len(before))
		hadDecom := slices.ContainsFunc(before, func(id int32) bool { return info[id].Decommissioning })
		if hadDecom {
			decom++
		}
		if len(set) != len(before) || hasDuplicate(set) {
			t.Fatalf("%s: %v became %v", name, before, set)
		}
		if !hadDecom && distinctRacks(info, set) < distinctRacks(info, before) {
			t.Fatalf("%s: %v became %v and lost a rack", name, before, set)
		}
	}
	feasible := len(holders) >= maxRF
	load := LoadOf(after)
	for _, b := range bs {
		if b.Decommissioning && feasible && load.Replicas[b.ID] > 0 {
			t.Fatalf("%s: decommissioning broker %d still holds %d replicas: %v", name, b.ID, load.Replicas[b.ID], after)
		}
	}
	checkPlanLeaders(t, name, bs, after)
	noRacks := !slices.ContainsFunc(bs, func(b Broker) bool { return b.Rack != "" })
	if noRacks && feasible && len(holders) > 0 {
		if s := spread(load.Replicas, holders); s > 1 {
			t.Fatalf("%s: replica counts %v after %v", name, load.Replicas, after)
		}
		if decom == 0 {
			checkMinimalReplicaMoves(t, name, holders, cur, moves)
		}
	}
	if noRacks || spread(load.Replicas, holders) <= 1 {
		if again := Plan(bs, after); len(again) != 0 {
			t.Fatalf("%s: plan does not settle: then %v", name, again)
		}
	}
}

// checkPlanLeaders checks that no preferred leader sits on a broker that may
// not lead when its partition has another choice, and that leader counts
// are as even as the replica lists allow.
func checkPlanLeaders(t *testing.T, name string, bs []Broker, after map[TopicPartition][]int32) {
	t.Helper()
	info := byID(bs)
	base := map[int32]int{}
	for _, b := range bs {
		if canLead(b, true) {
			base[b.ID] = 0
		}
	}
	got := maps.Clone(base)
	var choices [][]int32
	for _, set := range after {
		leader, listed := info[set[0]]
		if !listed {
			continue // led by a fenced broker: left alone
		}
		cands := slices.DeleteFunc(slices.Clone(set), func(id int32) bool {
			b, ok := info[id]
			return !canLead(b, ok)
		})
		if len(cands) == 0 {
			continue
		}
		if !canLead(leader, true) {
			t.Fatalf("%s: %v is led by %d, which may not lead", name, set, set[0])
		}
		got[set[0]]++
		choices = append(choices, cands)
	}
	if best, ok := bestLeaderCost(base, choices); ok && squares(got) != best {
		t.Fatalf("%s: leader counts %v are not as even as %v allow", name, got, after)
	}
}

// checkMinimalReplicaMoves compares the number of replica moves with the
// least any plan reaching counts within one of the mean could use.
func checkMinimalReplicaMoves(t *testing.T, name string, holders []int32, cur map[TopicPartition][]int32, moves []Move) {
	t.Helper()
	load := LoadOf(cur)
	var counts []int
	total := 0
	for _, id := range holders {
		counts = append(counts, load.Replicas[id])
		total += load.Replicas[id]
	}
	slices.Sort(counts)
	slices.Reverse(counts)
	least := 0
	for k, c := range counts {
		target := total / len(holders)
		if k < total%len(holders) {
			target++
		}
		least += max(0, c-target)
	}
	n := 0
	for _, m := range moves {
		if m.Kind == ReplicaMove {
			n++
		}
	}
	if n != least {
		t.Fatalf("%s: %d replica moves, the least possible is %d", name, n, least)
	}
}

// TestAssignBalancedRacks: with the same number of brokers on every rack
// and no more replicas than racks, rack awareness costs no balance.
func TestAssignBalancedRacks(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for round := range rounds {
		racks, perRack := 1+r.IntN(4), 1+r.IntN(3)
		var bs []Broker
		for i := range racks * perRack {
			bs = append(bs, Broker{ID: int32(i + 1), Rack: fmt.Sprintf("rack%d", i%racks)})
		}
		rf, partitions := 1+r.IntN(min(racks, 3)), 1+r.IntN(30)
		sets, err := Assign(bs, Load{}, partitions, rf)
		if err != nil {
			t.Fatal(err)
		}
		var l Load
		for _, s := range sets {
			l.Add(s)
		}
		ids := holdersOf(bs)
		if spread(l.Replicas, ids) > 1 || spread(l.Leaders, ids) > 1 {
			t.Fatalf("round %d: %d racks of %d, rf %d: replicas %v leaders %v (%v)",
				round, racks, perRack, rf, l.Replicas, l.Leaders, sets)
		}
	}
}
