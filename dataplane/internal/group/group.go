package group

import (
	"bytes"
	"slices"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// State is a classic group's state, named as Kafka names it.
type State string

// The states of a classic group.
const (
	Empty               State = "Empty"
	PreparingRebalance  State = "PreparingRebalance"
	CompletingRebalance State = "CompletingRebalance"
	Stable              State = "Stable"
	Dead                State = "Dead"
)

// consumerProtocol is the protocol type of Kafka consumers, whose member
// metadata names the subscribed topics.
const consumerProtocol = "consumer"

// Protocol is one assignment protocol a member supports, with the member's
// metadata for it.
type Protocol struct {
	Name     string
	Metadata []byte
}

// member is one member of a group.
type member struct {
	id, instance     string
	clientID, host   string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocols        []Protocol // in the member's order of preference
	assignment       []byte
	seq              uint64    // join order, for stable listings
	deadline         time.Time // session expiry, extended by heartbeats

	// join and sync are set while the member waits for its JoinGroup or
	// SyncGroup response; they are buffered so that sending never blocks.
	join chan JoinResult
	sync chan SyncResult
}

// keepAlive reports whether the session timeout is suspended: a member
// waiting for a rebalance is not expired while it waits.
func (m *member) keepAlive() bool { return m.join != nil || m.sync != nil }

// metadata returns the member's metadata for protocol name.
func (m *member) metadata(name string) []byte {
	for _, p := range m.protocols {
		if p.Name == name {
			return p.Metadata
		}
	}
	return nil
}

func (m *member) supports(name string) bool {
	for _, p := range m.protocols {
		if p.Name == name {
			return true
		}
	}
	return false
}

// matches reports whether ps are exactly the member's protocols.
func (m *member) matches(ps []Protocol) bool {
	return slices.EqualFunc(m.protocols, ps, func(a, b Protocol) bool {
		return a.Name == b.Name && bytes.Equal(a.Metadata, b.Metadata)
	})
}

func (m *member) answerJoin(r JoinResult) {
	if m.join != nil {
		m.join <- r
		m.join = nil
	}
}

func (m *member) answerSync(r SyncResult) {
	if m.sync != nil {
		m.sync <- r
		m.sync = nil
	}
}

// group is one classic group and its committed offsets. Every field is
// guarded by Coordinator.mu.
type group struct {
	id        string
	part      int32
	state     State
	stateTime time.Time // when state was entered: the retention base of an Empty group

	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*member
	static       map[string]string    // instance id -> member id
	pending      map[string]time.Time // member ids handed out with MEMBER_ID_REQUIRED, until when
	seq          uint64

	// PreparingRebalance: when the join phase ends. initialDelay marks the
	// delay of a group's first rebalance (group.initial.rebalance.delay.ms),
	// extended while new members keep arriving.
	joinDeadline   time.Time
	initialDelay   bool
	delayRemaining time.Duration
	newMembers     bool

	// Members that have not sent SyncGroup since the last join phase, and
	// until when they may.
	pendingSync  map[string]bool
	syncDeadline time.Time

	// The persisted image: what replaying the log up to the last applied
	// write yields.
	offsets  map[TopicPartition]*committed
	metadata []byte // encoded GroupMetadataValue, nil when none

	pendingCommits map[TopicPartition]int // commits queued but not yet applied
	inflight       int                    // queued writes that touch this group

	scheduled time.Time // earliest timer queued for this group
	gone      bool      // unloaded or deleted: timers and writes ignore it
}

func newGroup(id string, part int32, now time.Time) *group {
	return &group{
		id: id, part: part, state: Empty, stateTime: now,
		members: map[string]*member{}, static: map[string]string{}, pending: map[string]time.Time{},
		pendingSync: map[string]bool{}, offsets: map[TopicPartition]*committed{}, pendingCommits: map[TopicPartition]int{},
	}
}

func (g *group) setState(s State, now time.Time) {
	if g.state != s {
		g.state, g.stateTime = s, now
	}
}

// sortedMembers lists members in join order.
func (g *group) sortedMembers() []*member {
	ms := make([]*member, 0, len(g.members))
	for _, m := range g.members {
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].seq < ms[j].seq })
	return ms
}

// rebalanceTimeout is the longest rebalance timeout of the members.
func (g *group) rebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

// fenced reports whether instance is held by another member id.
func (g *group) fenced(instance, memberID string) bool {
	if instance == "" {
		return false
	}
	id, ok := g.static[instance]
	return ok && id != memberID
}

// allJoined reports whether every member and every pending member has sent
// its JoinGroup for this rebalance.
func (g *group) allJoined() bool {
	if len(g.pending) > 0 {
		return false
	}
	for _, m := range g.members {
		if m.join == nil {
			return false
		}
	}
	return true
}

func (g *group) anyJoined() *member {
	for _, m := range g.sortedMembers() {
		if m.join != nil {
			return m
		}
	}
	return nil
}

// supportsProtocols reports whether a member joining (or rejoining as
// memberID) with typ and ps fits the group: the first member sets the
// protocol type; later ones must share it and at least one protocol that
// every other member supports.
func (g *group) supportsProtocols(memberID, typ string, ps []Protocol) bool {
	if typ == "" || len(ps) == 0 {
		return false
	}
	others := 0
	for id := range g.members {
		if id != memberID {
			others++
		}
	}
	if others == 0 {
		return true
	}
	if typ != g.protocolType {
		return false
	}
	for _, p := range ps {
		all := true
		for id, m := range g.members {
			if id != memberID && !m.supports(p.Name) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// selectProtocol picks the protocol every member supports that most
// members prefer: each member votes for the first of its protocols that all
// support. Ties go to the name that sorts first, so the choice does not
// depend on map order.
func (g *group) selectProtocol() string {
	ms := g.sortedMembers()
	if len(ms) == 0 {
		return ""
	}
	var candidates []string
	for _, p := range ms[0].protocols {
		all := true
		for _, m := range ms[1:] {
			all = all && m.supports(p.Name)
		}
		if all && !slices.Contains(candidates, p.Name) {
			candidates = append(candidates, p.Name)
		}
	}
	votes := map[string]int{}
	for _, m := range ms {
		for _, p := range m.protocols {
			if slices.Contains(candidates, p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	for _, name := range candidates {
		if best == "" || votes[name] > votes[best] || votes[name] == votes[best] && name < best {
			best = name
		}
	}
	return best
}

// subscribedTopics returns the topics the members of a consumer group
// subscribe to, or ok=false when they cannot be known.
func (g *group) subscribedTopics() (topics map[string]bool, ok bool) {
	if g.protocolType != consumerProtocol || g.protocol == "" {
		return nil, false
	}
	topics = map[string]bool{}
	for _, m := range g.members {
		var md kmsg.ConsumerMemberMetadata
		if err := md.ReadFrom(m.metadata(g.protocol)); err != nil {
			return nil, false
		}
		for _, t := range md.Topics {
			topics[t] = true
		}
	}
	return topics, true
}

// nextDeadline is the earliest time at which the group has something to
// expire, or zero.
func (g *group) nextDeadline() time.Time {
	var next time.Time
	at := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, t := range g.pending {
		at(t)
	}
	for _, m := range g.members {
		if !m.keepAlive() {
			at(m.deadline)
		}
	}
	if g.state == PreparingRebalance {
		at(g.joinDeadline)
	}
	if len(g.pendingSync) > 0 && (g.state == CompletingRebalance || g.state == Stable) {
		at(g.syncDeadline)
	}
	return next
}

// encodeMetadata renders the group as a GroupMetadataValue record.
func (g *group) encodeMetadata() []byte {
	v := kmsg.NewGroupMetadataValue()
	v.Version = groupValueVersion
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	if g.protocol != "" {
		p := g.protocol
		v.Protocol = &p
	}
	if g.leader != "" && len(g.members) > 0 {
		l := g.leader
		v.Leader = &l
	}
	v.CurrentStateTimestamp = g.stateTime.UnixMilli()
	for _, m := range g.sortedMembers() {
		gm := kmsg.NewGroupMetadataValueMember()
		gm.MemberID, gm.ClientID, gm.ClientHost = m.id, m.clientID, m.host
		if m.instance != "" {
			inst := m.instance
			gm.InstanceID = &inst
		}
		gm.RebalanceTimeoutMillis = int32(m.rebalanceTimeout.Milliseconds())
		gm.SessionTimeoutMillis = int32(m.sessionTimeout.Milliseconds())
		gm.Subscription = m.metadata(g.protocol)
		gm.Assignment = m.assignment
		v.Members = append(v.Members, gm)
	}
	return v.AppendTo(nil)
}
