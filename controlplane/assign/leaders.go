package assign

import (
	"cmp"
	"slices"
)

// leaderBalancer moves preferred leadership within fixed replica lists.
//
// balance stops when no broker can pass a leadership, directly or along a
// chain of partitions (a leads p, b replicates p and leads q, c replicates
// q, …), to a broker with at least two leaders fewer. Each such chain lowers
// the sum of squared leader counts, so the loop ends; and with no chain left
// the counts are as even as the replica lists allow (a convex-cost flow with
// no improving cycle is optimal), which includes "within one of the mean"
// whenever that is possible.
type leaderBalancer struct {
	v    *view
	sets [][]int32
	// count holds the leader count of every broker that may lead, fixed
	// load included.
	count map[int32]int
	// led lists, per broker, the partitions it leads that may move, in
	// ascending order.
	led map[int32][]int
}

func newLeaderBalancer(v *view, sets [][]int32, count map[int32]int) *leaderBalancer {
	for _, b := range v.holders {
		if _, ok := count[b]; !ok && v.canLead(b) {
			count[b] = 0
		}
	}
	return &leaderBalancer{v: v, sets: sets, count: count, led: map[int32][]int{}}
}

// adopt counts the current leader of partition i and lets it move, if that
// leader may lead.
func (lb *leaderBalancer) adopt(i int) {
	if set := lb.sets[i]; len(set) > 0 && lb.v.canLead(set[0]) {
		lb.count[set[0]]++
		lb.led[set[0]] = insertSorted(lb.led[set[0]], i)
	}
}

// chooseLeader makes the member of partition i that may lead with the
// fewest leaders its leader (the earliest in the list on ties). It returns
// false, changing nothing, when no member may lead.
func (lb *leaderBalancer) chooseLeader(i int) bool {
	set := lb.sets[i]
	best := -1
	for k, b := range set {
		if lb.v.canLead(b) && (best < 0 || lb.count[b] < lb.count[set[best]]) {
			best = k
		}
	}
	if best < 0 {
		return false
	}
	set[0], set[best] = set[best], set[0]
	lb.adopt(i)
	return true
}

// step hands the leadership of partition part from one broker to another.
type step struct {
	part     int
	from, to int32
}

// balance applies improving chains until there are none.
func (lb *leaderBalancer) balance() {
	for {
		path := lb.findChain()
		if path == nil {
			return
		}
		for _, s := range path {
			set := lb.sets[s.part]
			k := slices.Index(set, s.to)
			set[0], set[k] = set[k], set[0]
			lb.led[s.from] = removeSorted(lb.led[s.from], s.part)
			lb.led[s.to] = insertSorted(lb.led[s.to], s.part)
		}
		lb.count[path[0].from]--
		lb.count[path[len(path)-1].to]++
	}
}

// findChain returns the shortest improving chain from the most loaded
// broker that has one, or nil.
func (lb *leaderBalancer) findChain() []step {
	brokers := make([]int32, 0, len(lb.count))
	low := 0
	for b, c := range lb.count {
		if len(brokers) == 0 || c < low {
			low = c
		}
		brokers = append(brokers, b)
	}
	slices.SortFunc(brokers, func(a, b int32) int {
		return cmp.Or(cmp.Compare(lb.count[b], lb.count[a]), cmp.Compare(a, b))
	})
	for _, src := range brokers {
		if lb.count[src] < low+2 {
			return nil
		}
		if path := lb.chainFrom(src); path != nil {
			return path
		}
	}
	return nil
}

// chainFrom searches breadth first from src for a broker with at least two
// leaders fewer; among the nearest it takes the least loaded, then the
// lowest id.
func (lb *leaderBalancer) chainFrom(src int32) []step {
	prev := map[int32]step{}
	visited := map[int32]bool{src: true}
	frontier := []int32{src}
	for len(frontier) > 0 {
		var next []int32
		var best int32
		found := false
		for _, x := range frontier {
			for _, i := range lb.led[x] {
				for _, y := range lb.sets[i][1:] {
					if visited[y] || !lb.v.canLead(y) {
						continue
					}
					visited[y] = true
					prev[y] = step{part: i, from: x, to: y}
					next = append(next, y)
					if lb.count[y] <= lb.count[src]-2 && (!found || lb.count[y] < lb.count[best] ||
						lb.count[y] == lb.count[best] && y < best) {
						best, found = y, true
					}
				}
			}
		}
		if found {
			var path []step
			for at := best; at != src; at = prev[at].from {
				path = append(path, prev[at])
			}
			slices.Reverse(path)
			return path
		}
		frontier = next
	}
	return nil
}

func insertSorted(s []int, x int) []int {
	i, found := slices.BinarySearch(s, x)
	if found {
		return s
	}
	return slices.Insert(s, i, x)
}

func removeSorted(s []int, x int) []int {
	i, found := slices.BinarySearch(s, x)
	if !found {
		return s
	}
	return slices.Delete(s, i, i+1)
}
