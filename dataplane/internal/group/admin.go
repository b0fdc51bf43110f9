package group

import (
	"context"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
)

// MemberDescription is one member as DescribeGroups shows it.
type MemberDescription struct {
	MemberID   string
	InstanceID string
	ClientID   string
	ClientHost string
	Metadata   []byte // for the group's protocol; empty while rebalancing
	Assignment []byte // empty while rebalancing
}

// Description is a group as DescribeGroups shows it. A group that does not
// exist is Dead, and Exists is false.
type Description struct {
	ErrorCode    int16
	Group        string
	Exists       bool
	State        State
	ProtocolType string
	Protocol     string
	Members      []MemberDescription
}

// Listing is a group as ListGroups shows it.
type Listing struct {
	Group        string
	ProtocolType string
	State        State
}

// GroupType is the type of every group this coordinator runs (ListGroups
// v5+): the classic protocol.
const GroupType = "classic"

// Describe handles DescribeGroups for one group. Member metadata and
// assignments are shown only for a Stable group, as Kafka does.
func (c *Coordinator) Describe(id string) Description {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := Description{Group: id, State: Dead}
	_, g, code := c.lookupLocked(id)
	if code != 0 || g == nil || g.state == Dead {
		d.ErrorCode = code
		return d
	}
	d.Exists, d.State, d.ProtocolType = true, g.state, g.protocolType
	stable := g.state == Stable
	if stable {
		d.Protocol = g.protocol
	}
	for _, m := range g.sortedMembers() {
		md := MemberDescription{MemberID: m.id, InstanceID: m.instance, ClientID: m.clientID, ClientHost: m.host,
			Metadata: []byte{}, Assignment: []byte{}}
		if stable {
			md.Metadata, md.Assignment = m.metadata(g.protocol), m.assignment
		}
		d.Members = append(d.Members, md)
	}
	return d
}

// List handles ListGroups: the groups of every loaded partition whose
// state is among states and type among types (case-insensitive; empty
// filters match all). The code is COORDINATOR_LOAD_IN_PROGRESS while some
// partition is still loading.
func (c *Coordinator) List(states, types []string) (int16, []Listing) {
	match := func(filter []string, v string) bool {
		if len(filter) == 0 {
			return true
		}
		for _, f := range filter {
			if strings.EqualFold(f, v) {
				return true
			}
		}
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var code int16
	var out []Listing
	if !match(types, GroupType) {
		return 0, nil
	}
	for _, p := range c.parts {
		if !p.loaded {
			code = kerr.CoordinatorLoadInProgress.Code
			continue
		}
		for _, g := range p.groups {
			if g.state != Dead && match(states, string(g.state)) {
				out = append(out, Listing{Group: g.id, ProtocolType: g.protocolType, State: g.state})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return code, out
}

// DeleteGroups handles DeleteGroups: one code per group. Only Empty groups
// can be deleted; their offsets and metadata are tombstoned before the
// answer.
func (c *Coordinator) DeleteGroups(ctx context.Context, ids []string) []int16 {
	codes := make([]int16, len(ids))
	waits := make([]chan int16, len(ids))
	c.mu.Lock()
	for i, id := range ids {
		codes[i], waits[i] = c.deleteGroupLocked(id)
	}
	c.mu.Unlock()
	for i, w := range waits {
		if w == nil {
			continue
		}
		select {
		case codes[i] = <-w:
		case <-ctx.Done():
			codes[i] = kerr.RequestTimedOut.Code
		}
	}
	return codes
}

func (c *Coordinator) deleteGroupLocked(id string) (int16, chan int16) {
	p, g, code := c.lookupLocked(id)
	switch {
	case code != 0:
		return code, nil
	case g == nil || g.state == Dead:
		return kerr.GroupIDNotFound.Code, nil
	case g.state != Empty || len(g.members) > 0:
		return kerr.NonEmptyGroup.Code, nil
	}
	// Dead from now on: joins and commits see COORDINATOR_NOT_AVAILABLE
	// and find the coordinator again, by when the group is gone.
	g.state = Dead
	clear(g.pending)
	var recs []kv
	keys := map[TopicPartition]bool{}
	for tp := range g.offsets {
		keys[tp] = true
	}
	for tp := range g.pendingCommits {
		keys[tp] = true
	}
	for _, tp := range sortedTPs(keys) {
		recs = append(recs, kv{key: offsetKey(g.id, tp)})
	}
	recs = append(recs, kv{key: groupKey(g.id)})
	done := make(chan int16, 1)
	g.inflight++
	c.enqueueLocked(p, &write{recs: recs, apply: func(err error) {
		g.inflight--
		code := c.writeCode(p, err)
		if err != nil {
			if !g.gone {
				g.state = Empty
			}
			done <- code
			return
		}
		clear(g.offsets)
		g.metadata = nil
		if !g.gone && p.groups[g.id] == g {
			delete(p.groups, g.id)
		}
		g.gone = true
		c.log.Info("deleted group", "group", g.id)
		done <- 0
	}})
	return 0, done
}
