// Package assign decides where partition replicas live: Assign places the
// replicas of new partitions, Plan computes the moves that even out an
// existing placement. Both are pure functions of their input, with no I/O,
// and give the same answer for the same input whatever the order of the
// brokers or of map iteration.
//
// The first replica of a list is the partition's preferred leader. Both
// functions spread replicas and preferred leaders evenly over the brokers
// that may hold them, and put the replicas of a partition on distinct racks
// as far as the racks allow. A broker without a rack counts as a rack of its
// own.
package assign

import (
	"errors"
	"fmt"
	"slices"
)

// Broker is a live broker as assignment sees it. Callers leave fenced
// brokers out; replicas they hold are left where they are.
type Broker struct {
	ID   int32
	Rack string
	// Draining brokers may hold replicas but no leaders.
	Draining bool
	// Decommissioning brokers hold nothing: they get no new replicas and Plan
	// moves their replicas elsewhere.
	Decommissioning bool
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Load is what brokers already carry: replica and preferred-leader counts
// over all existing partitions.
type Load struct {
	Replicas map[int32]int
	Leaders  map[int32]int
}

// LoadOf counts the replicas and preferred leaders of an assignment.
func LoadOf(assignment map[TopicPartition][]int32) Load {
	var l Load
	for _, replicas := range assignment {
		l.Add(replicas)
	}
	return l
}

// Add counts one more partition with the given replica list.
func (l *Load) Add(replicas []int32) {
	if len(replicas) == 0 {
		return
	}
	if l.Replicas == nil {
		l.Replicas = map[int32]int{}
	}
	if l.Leaders == nil {
		l.Leaders = map[int32]int{}
	}
	for _, b := range replicas {
		l.Replicas[b]++
	}
	l.Leaders[replicas[0]]++
}

// Errors returned by Assign.
var (
	// ErrInvalidReplicationFactor is Kafka's INVALID_REPLICATION_FACTOR:
	// fewer than one replica, or more than there are brokers to hold them.
	ErrInvalidReplicationFactor = errors.New("assign: invalid replication factor")
	// ErrInvalidPartitions is Kafka's INVALID_PARTITIONS.
	ErrInvalidPartitions = errors.New("assign: invalid number of partitions")
	// ErrDuplicateBroker means the broker list names one id twice.
	ErrDuplicateBroker = errors.New("assign: duplicate broker id")
)

// Assign returns replica lists for `partitions` new partitions of `rf`
// replicas each, given the load the brokers already carry. Replicas go to
// the least loaded brokers that are not decommissioning, on distinct racks
// first; then each partition's leader is chosen among its replicas so that
// leader counts are as even as the replica lists allow. Draining brokers are
// never chosen as leaders while another broker can be.
func Assign(brokers []Broker, existing Load, partitions int, rf int) ([][]int32, error) {
	v, err := newView(brokers)
	if err != nil {
		return nil, err
	}
	if partitions < 1 {
		return nil, fmt.Errorf("%w: %d", ErrInvalidPartitions, partitions)
	}
	if rf < 1 || rf > len(v.holders) {
		return nil, fmt.Errorf("%w: %d replicas, %d brokers available", ErrInvalidReplicationFactor, rf, len(v.holders))
	}
	replicas := map[int32]int{}
	leaders := map[int32]int{}
	for _, b := range v.holders {
		replicas[b] = existing.Replicas[b]
		if v.canLead(b) {
			leaders[b] = existing.Leaders[b]
		}
	}
	sets := make([][]int32, partitions)
	for p := range sets {
		sets[p] = v.pickSet(p, rf, replicas, leaders)
		for _, b := range sets[p] {
			replicas[b]++
		}
	}
	lb := newLeaderBalancer(v, sets, leaders)
	for i := range sets {
		// With only draining brokers left, no member may lead and the
		// first pick stays the leader.
		lb.chooseLeader(i)
	}
	lb.balance()
	return sets, nil
}

// view is the broker list in a form assignment can query.
type view struct {
	brokers map[int32]Broker
	// holders are the brokers that may hold replicas, by id.
	holders []int32
	// anyLeader is whether some holder may lead.
	anyLeader bool
}

func newView(brokers []Broker) (*view, error) {
	v := &view{brokers: make(map[int32]Broker, len(brokers))}
	for _, b := range brokers {
		if _, dup := v.brokers[b.ID]; dup {
			return nil, fmt.Errorf("%w: %d", ErrDuplicateBroker, b.ID)
		}
		v.brokers[b.ID] = b
		if !b.Decommissioning {
			v.holders = append(v.holders, b.ID)
			v.anyLeader = v.anyLeader || !b.Draining
		}
	}
	slices.Sort(v.holders)
	return v, nil
}

func (v *view) listed(id int32) bool {
	_, ok := v.brokers[id]
	return ok
}

func (v *view) canHold(id int32) bool {
	b, ok := v.brokers[id]
	return ok && !b.Decommissioning
}

func (v *view) canLead(id int32) bool {
	b, ok := v.brokers[id]
	return ok && !b.Decommissioning && !b.Draining
}

// rack returns the rack key of a broker: its rack, or a key of its own when
// it has none or is not listed.
func (v *view) rack(id int32) string {
	if b, ok := v.brokers[id]; ok && b.Rack != "" {
		return "r:" + b.Rack
	}
	return fmt.Sprintf("b:%d", id)
}

// racks counts the distinct racks of a replica list.
func (v *view) racks(set []int32) int {
	seen := make([]string, 0, len(set))
	for _, b := range set {
		if r := v.rack(b); !slices.Contains(seen, r) {
			seen = append(seen, r)
		}
	}
	return len(seen)
}

// pickSet chooses rf holders for new partition p: each pick takes the
// broker whose rack is least used in the set so far, then the one with the
// fewest replicas, then the one with the fewest leaders; remaining ties go
// round-robin from a start that moves with p. The first pick is a broker
// that may lead, when there is one.
func (v *view) pickSet(p, rf int, replicas, leaders map[int32]int) []int32 {
	n := len(v.holders)
	set := make([]int32, 0, rf)
	rackUse := map[string]int{}
	for k := range rf {
		var best int32
		var bestKey [3]int
		found := false
		for j := range n {
			b := v.holders[(p+j)%n]
			if slices.Contains(set, b) || (k == 0 && v.anyLeader && !v.canLead(b)) {
				continue
			}
			key := [3]int{rackUse[v.rack(b)], replicas[b], leaders[b]}
			if !found || slices.Compare(key[:], bestKey[:]) < 0 {
				best, bestKey, found = b, key, true
			}
		}
		set = append(set, best)
		rackUse[v.rack(best)]++
	}
	return set
}
