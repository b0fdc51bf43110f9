package group

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// JoinRequest is a JoinGroup request.
type JoinRequest struct {
	Group      string
	MemberID   string // "" for a member joining the first time
	InstanceID string // group.instance.id of a static member, or ""
	ClientID   string
	ClientHost string

	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	ProtocolType     string
	Protocols        []Protocol
	// RequireKnownMemberID asks new dynamic members to join again with the
	// member id they are given (JoinGroup v4+, MEMBER_ID_REQUIRED).
	RequireKnownMemberID bool
}

// JoinMember is a member as the leader sees it in its JoinGroup response.
type JoinMember struct {
	MemberID   string
	InstanceID string
	Metadata   []byte
}

// JoinResult is a JoinGroup response.
type JoinResult struct {
	ErrorCode    int16
	Generation   int32
	ProtocolType string
	Protocol     string // "" when the group has none
	LeaderID     string
	MemberID     string
	Members      []JoinMember // for the leader only
}

// SyncRequest is a SyncGroup request.
type SyncRequest struct {
	Group        string
	Generation   int32
	MemberID     string
	InstanceID   string
	ProtocolType *string // v5+: must match the group's when set
	Protocol     *string
	Assignments  map[string][]byte // from the leader only
}

// SyncResult is a SyncGroup response.
type SyncResult struct {
	ErrorCode    int16
	ProtocolType string
	Protocol     string
	Assignment   []byte
}

// LeaveMember names a member that leaves: by member id, or by instance id
// alone (an administrator removing a static member).
type LeaveMember struct {
	MemberID   string
	InstanceID string
}

// Join handles JoinGroup. It blocks until the group's join phase completes
// (or fails), or ctx ends.
func (c *Coordinator) Join(ctx context.Context, r JoinRequest) JoinResult {
	c.mu.Lock()
	res, wait := c.joinLocked(r)
	c.mu.Unlock()
	if wait == nil {
		return res
	}
	select {
	case res := <-wait:
		return res
	case <-ctx.Done():
		return JoinResult{ErrorCode: kerr.CoordinatorNotAvailable.Code, MemberID: r.MemberID, Generation: -1}
	}
}

func joinError(code int16, memberID string) (JoinResult, chan JoinResult) {
	return JoinResult{ErrorCode: code, MemberID: memberID, Generation: -1}, nil
}

// validJoin checks what does not depend on the group.
func (c *Coordinator) validJoin(r JoinRequest) int16 {
	if r.SessionTimeout < c.cfg.MinSessionTimeout || r.SessionTimeout > c.cfg.MaxSessionTimeout {
		return kerr.InvalidSessionTimeout.Code
	}
	if len(r.InstanceID) > maxString || len(r.ProtocolType) > maxString {
		return kerr.InvalidRequest.Code
	}
	size := 0
	for _, p := range r.Protocols {
		if len(p.Name) > maxString {
			return kerr.InvalidRequest.Code
		}
		size += len(p.Name) + len(p.Metadata)
	}
	if size > c.cfg.MaxMemberMetadataBytes {
		return kerr.MessageTooLarge.Code
	}
	return 0
}

func (c *Coordinator) joinLocked(r JoinRequest) (JoinResult, chan JoinResult) {
	p, g, code := c.lookupLocked(r.Group)
	if code == 0 {
		code = c.validJoin(r)
	}
	if code != 0 {
		return joinError(code, r.MemberID)
	}
	if g == nil {
		if r.MemberID != "" {
			return joinError(kerr.UnknownMemberID.Code, r.MemberID)
		}
		g = c.createLocked(p, r.Group)
	}
	if g.state == Dead {
		return joinError(kerr.CoordinatorNotAvailable.Code, r.MemberID)
	}
	if !g.supportsProtocols(r.MemberID, r.ProtocolType, r.Protocols) {
		c.maybeDropLocked(g)
		return joinError(kerr.InconsistentGroupProtocol.Code, r.MemberID)
	}
	var res JoinResult
	var wait chan JoinResult
	if r.MemberID == "" {
		res, wait = c.joinNewLocked(g, r)
	} else {
		res, wait = c.joinKnownLocked(g, r)
	}
	c.scheduleLocked(g)
	return res, wait
}

func (c *Coordinator) joinNewLocked(g *group, r JoinRequest) (JoinResult, chan JoinResult) {
	prefix := r.ClientID
	if r.InstanceID != "" {
		prefix = r.InstanceID
	}
	id := newMemberID(prefix)
	if r.InstanceID != "" {
		if old := g.static[r.InstanceID]; old != "" {
			return c.replaceStaticLocked(g, g.members[old], id, r)
		}
		return c.addMemberLocked(g, id, r)
	}
	if r.RequireKnownMemberID {
		g.pending[id] = c.now().Add(r.SessionTimeout)
		return joinError(kerr.MemberIDRequired.Code, id)
	}
	return c.addMemberLocked(g, id, r)
}

func (c *Coordinator) joinKnownLocked(g *group, r JoinRequest) (JoinResult, chan JoinResult) {
	if _, ok := g.pending[r.MemberID]; ok {
		delete(g.pending, r.MemberID)
		return c.addMemberLocked(g, r.MemberID, r)
	}
	if g.fenced(r.InstanceID, r.MemberID) {
		return joinError(kerr.FencedInstanceID.Code, r.MemberID)
	}
	m := g.members[r.MemberID]
	if m == nil {
		return joinError(kerr.UnknownMemberID.Code, r.MemberID)
	}
	switch g.state {
	case PreparingRebalance:
		return c.updateMemberLocked(g, m, r)
	case CompletingRebalance:
		if m.matches(r.Protocols) {
			// A retry of a join that completed: answer it again.
			return c.joinResultLocked(g, m, g.leader), nil
		}
		return c.updateMemberLocked(g, m, r)
	case Stable:
		if m.id == g.leader || !m.matches(r.Protocols) {
			return c.updateMemberLocked(g, m, r)
		}
		return c.joinResultLocked(g, m, g.leader), nil
	default:
		return joinError(kerr.UnknownMemberID.Code, r.MemberID)
	}
}

// joinResultLocked is the JoinGroup answer of the current generation;
// members are listed for the leader only.
func (c *Coordinator) joinResultLocked(g *group, m *member, leader string) JoinResult {
	res := JoinResult{Generation: g.generation, ProtocolType: g.protocolType, Protocol: g.protocol, LeaderID: leader, MemberID: m.id}
	if m.id == leader {
		for _, o := range g.sortedMembers() {
			res.Members = append(res.Members, JoinMember{MemberID: o.id, InstanceID: o.instance, Metadata: o.metadata(g.protocol)})
		}
	}
	return res
}

func (c *Coordinator) setMember(m *member, r JoinRequest) {
	m.clientID, m.host = r.ClientID, r.ClientHost
	m.sessionTimeout, m.rebalanceTimeout = r.SessionTimeout, r.RebalanceTimeout
	if m.rebalanceTimeout <= 0 {
		m.rebalanceTimeout = r.SessionTimeout
	}
	m.protocols = append([]Protocol(nil), r.Protocols...)
	m.deadline = c.now().Add(r.SessionTimeout)
}

// addMemberLocked adds a member that waits for the join phase, and starts
// a rebalance when none is under way.
func (c *Coordinator) addMemberLocked(g *group, id string, r JoinRequest) (JoinResult, chan JoinResult) {
	m := &member{id: id, instance: r.InstanceID, join: make(chan JoinResult, 1)}
	c.setMember(m, r)
	if len(g.members) == 0 {
		g.protocolType = r.ProtocolType
	}
	g.seq++
	m.seq = g.seq
	g.members[id] = m
	if m.instance != "" {
		g.static[m.instance] = id
	}
	if g.leader == "" || g.members[g.leader] == nil {
		g.leader = id
	}
	if g.state == PreparingRebalance && g.initialDelay {
		g.newMembers = true
	}
	c.log.Debug("member joined", "group", g.id, "member", id, "instance", m.instance, "client_id", m.clientID)
	wait := m.join
	c.rebalanceLocked(g)
	return JoinResult{}, wait
}

// updateMemberLocked records a known member's new join and makes sure a
// rebalance is under way.
func (c *Coordinator) updateMemberLocked(g *group, m *member, r JoinRequest) (JoinResult, chan JoinResult) {
	// A member that joins again while still waiting abandoned its
	// earlier request.
	m.answerJoin(JoinResult{ErrorCode: kerr.RebalanceInProgress.Code, MemberID: m.id, Generation: -1})
	c.setMember(m, r)
	wait := make(chan JoinResult, 1)
	m.join = wait
	c.rebalanceLocked(g)
	return JoinResult{}, wait
}

// replaceStaticLocked gives a static member's instance to a new member id
// and fences the old one. In a Stable group whose protocol stays the same
// the new member takes over the old one's assignment without a rebalance,
// once the group is stored.
func (c *Coordinator) replaceStaticLocked(g *group, old *member, id string, r JoinRequest) (JoinResult, chan JoinResult) {
	fenced := kerr.FencedInstanceID.Code
	old.answerJoin(JoinResult{ErrorCode: fenced, MemberID: old.id, Generation: -1})
	old.answerSync(SyncResult{ErrorCode: fenced})
	prevLeader := g.leader
	delete(g.members, old.id)
	m := &member{id: id, instance: r.InstanceID, seq: old.seq, assignment: old.assignment}
	c.setMember(m, r)
	g.members[id] = m
	g.static[m.instance] = id
	if g.leader == old.id {
		g.leader = id
	}
	if g.pendingSync[old.id] {
		delete(g.pendingSync, old.id)
		g.pendingSync[id] = true
	}
	c.log.Info("static member replaced", "group", g.id, "instance", m.instance, "old_member", old.id, "member", id)
	if g.state == Stable && g.selectProtocol() == g.protocol {
		return JoinResult{}, c.storeStaticLocked(g, m, prevLeader)
	}
	wait := make(chan JoinResult, 1)
	m.join = wait
	c.rebalanceLocked(g)
	return JoinResult{}, wait
}

// storeStaticLocked persists a Stable group after a static member was
// replaced and then answers the new member with the current generation.
// The leader named is the one before the replacement, so that a replaced
// leader does not assign again in a group that stays Stable.
func (c *Coordinator) storeStaticLocked(g *group, m *member, leader string) chan JoinResult {
	ch := make(chan JoinResult, 1)
	gen := g.generation
	c.storeGroupLocked(g, func(code int16) {
		if code != 0 || g.gone || g.generation != gen || g.members[m.id] != m {
			if code == 0 {
				code = kerr.RebalanceInProgress.Code
			}
			ch <- JoinResult{ErrorCode: code, MemberID: m.id, Generation: -1}
			return
		}
		res := c.joinResultLocked(g, m, leader)
		res.Members = nil
		ch <- res
	})
	return ch
}

// rebalanceLocked starts a rebalance, or, when one is under way, checks
// whether its join phase can complete.
func (c *Coordinator) rebalanceLocked(g *group) {
	switch g.state {
	case Empty, Stable, CompletingRebalance:
		c.prepareRebalanceLocked(g)
	case PreparingRebalance:
		c.maybeCompleteJoinLocked(g)
	}
}

// prepareRebalanceLocked enters PreparingRebalance: members must join
// again within the rebalance timeout. Members still waiting for their
// assignment are told to rejoin.
func (c *Coordinator) prepareRebalanceLocked(g *group) {
	now := c.now()
	if g.state == CompletingRebalance {
		for _, m := range g.members {
			m.assignment = nil
			m.answerSync(SyncResult{ErrorCode: kerr.RebalanceInProgress.Code})
		}
	}
	clear(g.pendingSync)
	timeout := g.rebalanceTimeout()
	if g.state == Empty && c.cfg.InitialRebalanceDelay > 0 {
		delay := min(c.cfg.InitialRebalanceDelay, timeout)
		g.initialDelay, g.delayRemaining, g.newMembers = true, timeout-delay, false
		g.joinDeadline = now.Add(delay)
	} else {
		g.initialDelay = false
		g.joinDeadline = now.Add(timeout)
	}
	c.log.Info("preparing to rebalance group", "group", g.id, "old_generation", g.generation, "members", len(g.members))
	g.setState(PreparingRebalance, now)
	c.maybeCompleteJoinLocked(g)
	c.scheduleLocked(g)
}

func (c *Coordinator) maybeCompleteJoinLocked(g *group) {
	if g.state == PreparingRebalance && !g.initialDelay && g.allJoined() {
		c.completeJoinLocked(g)
	}
}

// joinDeadlineLocked ends the join phase when its time is up, or extends
// a group's initial delay while new members keep arriving.
func (c *Coordinator) joinDeadlineLocked(g *group) {
	now := c.now()
	if g.initialDelay && g.newMembers && g.delayRemaining > 0 {
		d := min(c.cfg.InitialRebalanceDelay, g.delayRemaining)
		g.delayRemaining -= d
		g.newMembers = false
		g.joinDeadline = now.Add(d)
		return
	}
	g.initialDelay = false
	c.completeJoinLocked(g)
}

// completeJoinLocked ends the join phase: dynamic members that did not
// join again are removed, a leader is chosen among those that did, the
// generation moves on and every member gets its JoinGroup answer.
func (c *Coordinator) completeJoinLocked(g *group) {
	now := c.now()
	for _, m := range g.sortedMembers() {
		if m.join == nil && m.instance == "" {
			c.log.Info("member did not rejoin in time", "group", g.id, "member", m.id)
			c.forgetMemberLocked(g, m)
		}
	}
	if len(g.members) > 0 && g.anyJoined() == nil {
		// Only static members that have not rejoined are left: give them
		// another rebalance timeout, their sessions decide.
		g.joinDeadline = now.Add(g.rebalanceTimeout())
		return
	}
	if l := g.members[g.leader]; l == nil || l.join == nil {
		g.leader = ""
		if m := g.anyJoined(); m != nil {
			g.leader = m.id
		}
	}
	g.generation++
	g.initialDelay = false
	if len(g.members) == 0 {
		g.protocol = ""
		g.setState(Empty, now)
		c.log.Info("group is empty", "group", g.id, "generation", g.generation)
		c.storeGroupLocked(g, nil)
		return
	}
	g.protocol = g.selectProtocol()
	g.setState(CompletingRebalance, now)
	c.log.Info("group rebalanced", "group", g.id, "generation", g.generation, "protocol", g.protocol,
		"leader", g.leader, "members", len(g.members))
	for _, m := range g.sortedMembers() {
		m.answerJoin(c.joinResultLocked(g, m, g.leader))
		m.deadline = now.Add(m.sessionTimeout)
		g.pendingSync[m.id] = true
	}
	g.syncDeadline = now.Add(g.rebalanceTimeout())
}

// forgetMemberLocked removes a member without changing the group's state.
func (c *Coordinator) forgetMemberLocked(g *group, m *member) {
	delete(g.members, m.id)
	if m.instance != "" && g.static[m.instance] == m.id {
		delete(g.static, m.instance)
	}
	delete(g.pendingSync, m.id)
	if g.leader == m.id {
		g.leader = ""
		if ms := g.sortedMembers(); len(ms) > 0 {
			g.leader = ms[0].id
		}
	}
}

// removeMemberLocked removes a member that left or expired; its waiting
// requests get code, and the others rebalance.
func (c *Coordinator) removeMemberLocked(g *group, m *member, code int16) {
	m.answerJoin(JoinResult{ErrorCode: code, MemberID: m.id, Generation: -1})
	m.answerSync(SyncResult{ErrorCode: code})
	c.forgetMemberLocked(g, m)
	switch g.state {
	case Stable, CompletingRebalance:
		c.prepareRebalanceLocked(g)
	case PreparingRebalance:
		c.maybeCompleteJoinLocked(g)
	}
}

// Sync handles SyncGroup. The leader's assignment is stored before any
// member gets its share; others wait for it, or for ctx to end.
func (c *Coordinator) Sync(ctx context.Context, r SyncRequest) SyncResult {
	c.mu.Lock()
	res, wait := c.syncLocked(r)
	c.mu.Unlock()
	if wait == nil {
		return res
	}
	select {
	case res := <-wait:
		return res
	case <-ctx.Done():
		return SyncResult{ErrorCode: kerr.CoordinatorNotAvailable.Code}
	}
}

func syncError(code int16) (SyncResult, chan SyncResult) { return SyncResult{ErrorCode: code}, nil }

// checkMemberLocked applies the checks that Heartbeat, SyncGroup and
// OffsetCommit share. Caller holds c.mu.
func checkMember(g *group, memberID, instance string, generation int32) int16 {
	switch {
	case g == nil:
		return kerr.UnknownMemberID.Code
	case g.state == Dead:
		return kerr.CoordinatorNotAvailable.Code
	case g.fenced(instance, memberID):
		return kerr.FencedInstanceID.Code
	case g.members[memberID] == nil:
		return kerr.UnknownMemberID.Code
	case generation != g.generation:
		return kerr.IllegalGeneration.Code
	}
	return 0
}

func (c *Coordinator) syncLocked(r SyncRequest) (SyncResult, chan SyncResult) {
	_, g, code := c.lookupLocked(r.Group)
	if code == 0 {
		code = checkMember(g, r.MemberID, r.InstanceID, r.Generation)
	}
	if code == 0 && (r.ProtocolType != nil && *r.ProtocolType != g.protocolType || r.Protocol != nil && *r.Protocol != g.protocol) {
		code = kerr.InconsistentGroupProtocol.Code
	}
	if code != 0 {
		return syncError(code)
	}
	m := g.members[r.MemberID]
	m.deadline = c.now().Add(m.sessionTimeout)
	switch g.state {
	case Empty:
		return syncError(kerr.UnknownMemberID.Code)
	case PreparingRebalance:
		return syncError(kerr.RebalanceInProgress.Code)
	case Stable:
		delete(g.pendingSync, m.id)
		return SyncResult{ProtocolType: g.protocolType, Protocol: g.protocol, Assignment: m.assignment}, nil
	}
	// CompletingRebalance
	for _, a := range r.Assignments {
		if len(a) > c.cfg.MaxMemberMetadataBytes {
			return syncError(kerr.MessageTooLarge.Code)
		}
	}
	m.answerSync(SyncResult{ErrorCode: kerr.RebalanceInProgress.Code})
	m.sync = make(chan SyncResult, 1)
	delete(g.pendingSync, m.id)
	if m.id == g.leader {
		c.assignLocked(g, r.Assignments)
	}
	return SyncResult{}, m.sync
}

// assignLocked stores the leader's assignment and then hands every member
// its share, making the group Stable; if storing fails, the members are
// told and the group rebalances.
func (c *Coordinator) assignLocked(g *group, assignments map[string][]byte) {
	for _, m := range g.members {
		m.assignment = assignments[m.id]
		if m.assignment == nil {
			m.assignment = []byte{}
		}
	}
	gen := g.generation
	c.storeGroupLocked(g, func(code int16) {
		if g.gone || g.state != CompletingRebalance || g.generation != gen {
			return
		}
		if code != 0 {
			for _, m := range g.members {
				m.assignment = nil
				m.answerSync(SyncResult{ErrorCode: code})
			}
			c.prepareRebalanceLocked(g)
			return
		}
		g.setState(Stable, c.now())
		c.log.Info("group stable", "group", g.id, "generation", g.generation, "members", len(g.members))
		for _, m := range g.members {
			m.answerSync(SyncResult{ProtocolType: g.protocolType, Protocol: g.protocol, Assignment: m.assignment})
		}
		c.scheduleLocked(g)
	})
}

// storeGroupLocked appends the group's metadata as it is now; then, under
// c.mu, records it as persisted and calls then (if set) with the outcome.
func (c *Coordinator) storeGroupLocked(g *group, then func(code int16)) {
	p := c.parts[g.part]
	if p == nil {
		if then != nil {
			then(kerr.NotCoordinator.Code)
		}
		return
	}
	value := g.encodeMetadata()
	g.inflight++
	c.enqueueLocked(p, &write{recs: []kv{{groupKey(g.id), value}}, apply: func(err error) {
		g.inflight--
		if err == nil && !g.gone {
			g.metadata = value
		}
		if then != nil {
			then(c.writeCode(p, err))
		}
		c.scheduleLocked(g)
	}})
}

// Heartbeat handles Heartbeat and returns its error code.
func (c *Coordinator) Heartbeat(group string, generation int32, memberID, instance string) int16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, g, code := c.lookupLocked(group)
	if code == 0 {
		code = checkMember(g, memberID, instance, generation)
	}
	if code != 0 {
		return code
	}
	m := g.members[memberID]
	switch g.state {
	case Empty:
		return kerr.UnknownMemberID.Code
	case PreparingRebalance:
		m.deadline = c.now().Add(m.sessionTimeout)
		return kerr.RebalanceInProgress.Code
	default:
		m.deadline = c.now().Add(m.sessionTimeout)
		return 0
	}
}

// Leave handles LeaveGroup: a group-level code, and one code per member.
func (c *Coordinator) Leave(group string, members []LeaveMember) (int16, []int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, g, code := c.lookupLocked(group)
	codes := make([]int16, len(members))
	if code != 0 {
		return code, codes
	}
	if g != nil && g.state == Dead {
		return kerr.CoordinatorNotAvailable.Code, codes
	}
	for i, lm := range members {
		codes[i] = c.leaveLocked(g, lm)
	}
	if g != nil {
		c.scheduleLocked(g)
	}
	return 0, codes
}

func (c *Coordinator) leaveLocked(g *group, lm LeaveMember) int16 {
	if g == nil {
		return kerr.UnknownMemberID.Code
	}
	id := lm.MemberID
	if id == "" {
		if lm.InstanceID == "" || g.static[lm.InstanceID] == "" {
			return kerr.UnknownMemberID.Code
		}
		id = g.static[lm.InstanceID]
	} else if g.fenced(lm.InstanceID, id) {
		return kerr.FencedInstanceID.Code
	}
	if _, ok := g.pending[id]; ok {
		delete(g.pending, id)
		c.maybeCompleteJoinLocked(g)
		return 0
	}
	m := g.members[id]
	if m == nil {
		return kerr.UnknownMemberID.Code
	}
	c.log.Info("member left", "group", g.id, "member", id, "instance", m.instance)
	c.removeMemberLocked(g, m, kerr.UnknownMemberID.Code)
	return 0
}
