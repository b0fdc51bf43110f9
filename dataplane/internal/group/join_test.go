package group

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestPartitionForMatchesKafka(t *testing.T) {
	for _, tc := range []struct {
		group string
		n     int32
		want  int32
	}{
		{"abc", 50, 96354 % 50},       // "abc".hashCode() == 96354
		{"polygenelubricants", 50, 0}, // hashCode() == Integer.MIN_VALUE
		{"console-consumer-12345", 1, 0},
		{"Aa", 7, 2112 % 7}, // collides with "BB"
		{"BB", 7, 2112 % 7},
		{"é", 50, 233 % 50},                // one UTF-16 unit
		{"𝄞", 50, (55348*31 + 56606) % 50}, // a surrogate pair
		{"", 50, 0},
	} {
		if got := PartitionFor(tc.group, tc.n); got != tc.want {
			t.Errorf("PartitionFor(%q, %d) = %d, want %d", tc.group, tc.n, got, tc.want)
		}
	}
}

func TestJoinMemberIDRequiredThenStable(t *testing.T) {
	h := newHarness(t)
	r := joinReq("g", "")
	r.RequireKnownMemberID = true
	first := recv(t, h.startJoin(r))
	wantCode(t, "first join", first.ErrorCode, kerr.MemberIDRequired)
	if first.MemberID == "" || first.MemberID[:7] != "client-" {
		t.Fatalf("member id %q", first.MemberID)
	}
	r.MemberID = first.MemberID
	res := h.joinAll(r)[0].res
	if res.Generation != 1 || res.LeaderID != r.MemberID || res.Protocol != "range" || res.ProtocolType != "consumer" || len(res.Members) != 1 {
		t.Fatalf("join result %+v", res)
	}
	if st, _, _ := h.state("g"); st != CompletingRebalance {
		t.Fatalf("state %s", st)
	}
	wantCode(t, "heartbeat while completing", h.c.Heartbeat("g", 1, r.MemberID, ""), nil)
	h.syncAll("g", []joined{{r.MemberID, res}})
	if st, gen, n := h.state("g"); st != Stable || gen != 1 || n != 1 {
		t.Fatalf("state %s gen %d members %d", st, gen, n)
	}
	wantCode(t, "heartbeat", h.c.Heartbeat("g", 1, r.MemberID, ""), nil)
	// A non-leader-free group: the leader rejoining starts a new generation.
	res2 := recv(t, h.startJoin(r))
	if res2.Generation != 2 {
		t.Fatalf("leader rejoin: %+v", res2)
	}
}

func TestPendingMemberExpires(t *testing.T) {
	h := newHarness(t)
	ms := h.form("g", 1)
	r := joinReq("g", "")
	r.RequireKnownMemberID = true
	p := recv(t, h.startJoin(r))
	wantCode(t, "join", p.ErrorCode, kerr.MemberIDRequired)
	// The known member keeps heartbeating; the pending one never returns.
	h.advance(testSession / 2)
	wantCode(t, "heartbeat", h.c.Heartbeat("g", 1, ms[0].id, ""), nil)
	h.advance(testSession/2 + time.Millisecond)
	r.MemberID = p.MemberID
	wantCode(t, "late rejoin", recv(t, h.startJoin(r)).ErrorCode, kerr.UnknownMemberID)
}

func TestThreeMembersOneGeneration(t *testing.T) {
	h := newHarness(t)
	ms := h.form("g", 3)
	leaders := 0
	for _, m := range ms {
		if m.res.Generation != 1 {
			t.Fatalf("generation %d", m.res.Generation)
		}
		if m.id == m.res.LeaderID {
			leaders++
			if len(m.res.Members) != 3 {
				t.Fatalf("leader sees %d members", len(m.res.Members))
			}
		} else if len(m.res.Members) != 0 {
			t.Fatalf("follower sees members")
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders", leaders)
	}
	// A follower rejoining with the same metadata in a Stable group just
	// gets the current generation back.
	r := joinReq("g", ms[1].id)
	if ms[1].id == ms[1].res.LeaderID {
		r.MemberID = ms[2].id
	}
	res := recv(t, h.startJoin(r))
	wantCode(t, "follower rejoin", res.ErrorCode, nil)
	if st, gen, _ := h.state("g"); st != Stable || gen != 1 || res.Generation != 1 {
		t.Fatalf("state %s gen %d res %+v", st, gen, res)
	}
}

func TestProtocolSelection(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members [][]string
		want    string
	}{
		{"one member first choice", [][]string{{"cooperative-sticky", "range"}}, "cooperative-sticky"},
		{"majority preference", [][]string{{"range", "roundrobin"}, {"roundrobin", "range"}, {"roundrobin", "range"}}, "roundrobin"},
		{"only common protocol", [][]string{{"sticky", "range"}, {"range"}, {"roundrobin", "range"}}, "range"},
		{"votes only for common ones", [][]string{{"x", "range", "sticky"}, {"sticky", "range"}}, "range"},
		{"tie goes to the first name", [][]string{{"roundrobin", "range"}, {"range", "roundrobin"}}, "range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			var rs []JoinRequest
			for _, ps := range tc.members {
				rs = append(rs, joinReq("g", "", ps...))
			}
			for _, m := range h.joinAll(rs...) {
				res := m.res
				if res.Protocol != tc.want {
					t.Fatalf("protocol %q, want %q", res.Protocol, tc.want)
				}
			}
		})
	}
}

func TestJoinRejects(t *testing.T) {
	h := newHarness(t)
	h.form("g", 1)
	big := joinReq("g", "")
	big.Protocols[0].Metadata = make([]byte, 1<<20+1)
	for _, tc := range []struct {
		name string
		edit func(*JoinRequest)
		want *kerr.Error
	}{
		{"empty group id", func(r *JoinRequest) { r.Group = "" }, kerr.InvalidGroupID},
		{"session too short", func(r *JoinRequest) { r.SessionTimeout = time.Millisecond }, kerr.InvalidSessionTimeout},
		{"session too long", func(r *JoinRequest) { r.SessionTimeout = time.Hour }, kerr.InvalidSessionTimeout},
		{"no protocol type", func(r *JoinRequest) { r.Group, r.ProtocolType = "fresh", "" }, kerr.InconsistentGroupProtocol},
		{"no protocols", func(r *JoinRequest) { r.Group, r.Protocols = "fresh", nil }, kerr.InconsistentGroupProtocol},
		{"other protocol type", func(r *JoinRequest) { r.ProtocolType = "connect" }, kerr.InconsistentGroupProtocol},
		{"no common protocol", func(r *JoinRequest) { r.Protocols[0].Name = "roundrobin" }, kerr.InconsistentGroupProtocol},
		{"unknown member", func(r *JoinRequest) { r.MemberID = "nobody" }, kerr.UnknownMemberID},
		{"unknown member of unknown group", func(r *JoinRequest) { r.Group, r.MemberID = "fresh", "nobody" }, kerr.UnknownMemberID},
		{"metadata over 1 MiB", func(r *JoinRequest) { *r = big }, kerr.MessageTooLarge},
		{"metadata over 1 MiB in all", func(r *JoinRequest) {
			r.Protocols = []Protocol{{"range", make([]byte, 600<<10)}, {"sticky", make([]byte, 600<<10)}}
		}, kerr.MessageTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := joinReq("g", "")
			tc.edit(&r)
			wantCode(t, tc.name, recv(t, h.startJoin(r)).ErrorCode, tc.want)
			if st, gen, n := h.state("g"); st != Stable || gen != 1 || n != 1 {
				t.Fatalf("group g disturbed: %s gen %d members %d", st, gen, n)
			}
		})
	}
	if st, _, _ := h.state("fresh"); st != Dead {
		t.Fatalf("rejected joins left group fresh in state %s", st)
	}
}

func TestHeartbeatAndSyncErrors(t *testing.T) {
	h := newHarness(t)
	ms := h.form("g", 2)
	a := ms[0].id
	for _, tc := range []struct {
		name   string
		group  string
		gen    int32
		member string
		inst   string
		want   *kerr.Error
	}{
		{"ok", "g", 1, a, "", nil},
		{"unknown group", "other", 1, a, "", kerr.UnknownMemberID},
		{"unknown member", "g", 1, "nobody", "", kerr.UnknownMemberID},
		{"old generation", "g", 0, a, "", kerr.IllegalGeneration},
		{"future generation", "g", 2, a, "", kerr.IllegalGeneration},
		{"invalid group id", "", 1, a, "", kerr.InvalidGroupID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, "heartbeat", h.c.Heartbeat(tc.group, tc.gen, tc.member, tc.inst), tc.want)
			res := recv(t, h.startSync(SyncRequest{Group: tc.group, Generation: tc.gen, MemberID: tc.member, InstanceID: tc.inst}))
			wantCode(t, "sync", res.ErrorCode, tc.want)
		})
	}
	typ, proto := "consumer", "roundrobin"
	res := recv(t, h.startSync(SyncRequest{Group: "g", Generation: 1, MemberID: a, ProtocolType: &typ, Protocol: &proto}))
	wantCode(t, "sync with other protocol", res.ErrorCode, kerr.InconsistentGroupProtocol)

	// During a rebalance, heartbeats say so and syncs are refused.
	ch := h.startJoin(joinReq("g", ms[1].id, "range", "x")) // new metadata: rebalance
	wantCode(t, "heartbeat in rebalance", h.c.Heartbeat("g", 1, a, ""), kerr.RebalanceInProgress)
	wantCode(t, "sync in rebalance", recv(t, h.startSync(SyncRequest{Group: "g", Generation: 1, MemberID: a})).ErrorCode, kerr.RebalanceInProgress)
	pending(t, ch)
}

func TestSessionExpiryRebalances(t *testing.T) {
	h := newHarness(t)
	ms := h.form("g", 2)
	a, b := ms[0], ms[1]
	// a keeps heartbeating, b goes silent.
	for i := 0; i < 3; i++ {
		h.advance(4 * time.Second)
		wantCode(t, "heartbeat a", h.c.Heartbeat("g", 1, a.id, ""), nil)
		if i == 0 {
			wantCode(t, "heartbeat b", h.c.Heartbeat("g", 1, b.id, ""), nil)
		}
	}
	h.advance(4 * time.Second)
	// b expired after its session: the group prepares a rebalance.
	wantCode(t, "heartbeat a after expiry", h.c.Heartbeat("g", 1, a.id, ""), kerr.RebalanceInProgress)
	wantCode(t, "heartbeat b after expiry", h.c.Heartbeat("g", 1, b.id, ""), kerr.UnknownMemberID)
	res := recv(t, h.startJoin(joinReq("g", a.id)))
	if res.Generation != 2 || res.LeaderID != a.id || len(res.Members) != 1 {
		t.Fatalf("rejoin: %+v", res)
	}
}

func TestRebalanceTimeoutRemovesLateMembers(t *testing.T) {
	h := newHarness(t)
	ms := h.form("g", 3)
	// One member rejoins with new metadata; another keeps heartbeating but
	// never rejoins; the third rejoins late.
	ch0 := h.startJoin(joinReq("g", ms[0].id, "range", "sticky"))
	for range 3 {
		h.advance(5 * time.Second)
		wantCode(t, "heartbeat 1", h.c.Heartbeat("g", 1, ms[1].id, ""), kerr.RebalanceInProgress)
		wantCode(t, "heartbeat 2", h.c.Heartbeat("g", 1, ms[2].id, ""), kerr.RebalanceInProgress)
	}
	ch2 := h.startJoin(joinReq("g", ms[2].id))
	for range 3 {
		pending(t, ch0)
		h.advance(5 * time.Second)
		h.c.Heartbeat("g", 1, ms[1].id, "")
	}
	r0, r2 := recv(t, ch0), recv(t, ch2)
	if r0.Generation != 2 || r2.Generation != 2 {
		t.Fatalf("generations %d %d", r0.Generation, r2.Generation)
	}
	leader := r0
	if r2.MemberID == r2.LeaderID {
		leader = r2
	}
	if len(leader.Members) != 2 {
		t.Fatalf("leader sees %d members, want 2", len(leader.Members))
	}
	wantCode(t, "removed member", h.c.Heartbeat("g", 2, ms[1].id, ""), kerr.UnknownMemberID)
}

func TestSyncTimeoutRemovesMembers(t *testing.T) {
	h := newHarness(t)
	ms := h.joinAll(joinReq("g", ""), joinReq("g", ""))
	r0, r1 := ms[0].res, ms[1].res
	leader, follower := r0, r1
	if r1.MemberID == r1.LeaderID {
		leader, follower = r1, r0
	}
	// Only the leader syncs; the follower heartbeats but never syncs.
	sync := h.startSync(SyncRequest{Group: "g", Generation: 1, MemberID: leader.MemberID,
		Assignments: map[string][]byte{leader.MemberID: []byte("x"), follower.MemberID: []byte("y")}})
	wantCode(t, "leader sync", recv(t, sync).ErrorCode, nil)
	for range 6 {
		h.advance(testRebal / 6)
		h.c.Heartbeat("g", 1, leader.MemberID, "")
		h.c.Heartbeat("g", 1, follower.MemberID, "")
	}
	wantCode(t, "follower", h.c.Heartbeat("g", 1, follower.MemberID, ""), kerr.UnknownMemberID)
	wantCode(t, "leader", h.c.Heartbeat("g", 1, leader.MemberID, ""), kerr.RebalanceInProgress)
}

func TestStaticMemberReplacementAndFencing(t *testing.T) {
	h := newHarness(t)
	static := joinReq("g", "")
	static.InstanceID = "pod-1"
	static.RequireKnownMemberID = true // static members skip MEMBER_ID_REQUIRED
	ms := h.joinAll(static, joinReq("g", ""))
	old, dyn := ms[0], ms[1]
	if old.id[:6] != "pod-1-" {
		t.Fatalf("static member id %q", old.id)
	}
	h.syncAll("g", ms)

	// The static member restarts: same instance, no member id. A Stable
	// group keeps its generation and hands the new id the old assignment.
	res := recv(t, h.startJoin(static))
	wantCode(t, "replacement join", res.ErrorCode, nil)
	if res.MemberID == old.id || res.Generation != 1 || len(res.Members) != 0 || res.LeaderID != old.res.LeaderID {
		t.Fatalf("replacement: %+v (old %s)", res, old.id)
	}
	if st, gen, n := h.state("g"); st != Stable || gen != 1 || n != 2 {
		t.Fatalf("after replacement: %s gen %d members %d", st, gen, n)
	}
	fenced := kerr.FencedInstanceID
	wantCode(t, "old heartbeat", h.c.Heartbeat("g", 1, old.id, "pod-1"), fenced)
	wantCode(t, "old sync", recv(t, h.startSync(SyncRequest{Group: "g", Generation: 1, MemberID: old.id, InstanceID: "pod-1"})).ErrorCode, fenced)
	oldJoin := static
	oldJoin.MemberID = old.id
	wantCode(t, "old join", recv(t, h.startJoin(oldJoin)).ErrorCode, fenced)
	codes := h.c.CommitOffsets(h.ctx, CommitRequest{Group: "g", Generation: 1, MemberID: old.id, InstanceID: "pod-1",
		Offsets: []OffsetCommit{{Topic: "t", Offset: 5}}})
	wantCode(t, "old commit", codes[0], fenced)
	sync := recv(t, h.startSync(SyncRequest{Group: "g", Generation: 1, MemberID: res.MemberID, InstanceID: "pod-1"}))
	wantCode(t, "new sync", sync.ErrorCode, nil)
	if string(sync.Assignment) != "a-"+old.id {
		t.Fatalf("new member got %q, want the old assignment", sync.Assignment)
	}
	wantCode(t, "dynamic heartbeat", h.c.Heartbeat("g", 1, dyn.id, ""), nil)

	// Replaced while waiting in a rebalance: the waiting join is fenced and
	// the replacement completes the round.
	cur := static
	cur.MemberID = res.MemberID
	cur.Protocols = append(cur.Protocols, Protocol{Name: "sticky"})
	waiting := h.startJoin(cur)
	pending(t, waiting)
	third := h.startJoin(static)
	wantCode(t, "waiting join", recv(t, waiting).ErrorCode, fenced)
	pending(t, third)
	rd := recv(t, h.startJoin(joinReq("g", dyn.id)))
	r3 := recv(t, third)
	if r3.Generation != 2 || rd.Generation != 2 || r3.MemberID == res.MemberID {
		t.Fatalf("round after replacement: %+v / %+v", r3, rd)
	}
}

// TestStaticMemberSurvivesRebalance: a static member that does not rejoin
// within the rebalance timeout keeps its place (its session decides).
func TestStaticMemberSurvivesRebalance(t *testing.T) {
	h := newHarness(t)
	static := joinReq("g", "")
	static.InstanceID = "pod-1"
	ms := h.joinAll(static, joinReq("g", ""))
	h.syncAll("g", ms)
	ch := h.startJoin(joinReq("g", ms[1].id, "range", "sticky"))
	for range 5 {
		pending(t, ch)
		h.advance(testRebal / 6)
		wantCode(t, "static heartbeat", h.c.Heartbeat("g", 1, ms[0].id, "pod-1"), kerr.RebalanceInProgress)
	}
	h.advance(testRebal / 6)
	res := recv(t, ch)
	if res.Generation != 2 || res.LeaderID != ms[1].id || len(res.Members) != 2 {
		t.Fatalf("%+v", res)
	}
	if _, _, n := h.state("g"); n != 2 {
		t.Fatalf("static member dropped: %d members", n)
	}
}

func TestLeaveBatched(t *testing.T) {
	h := newHarness(t)
	r := joinReq("g", "")
	r.InstanceID = "static-1"
	ms := h.joinAll(r, joinReq("g", ""), joinReq("g", ""))
	h.syncAll("g", ms)
	code, codes := h.c.Leave("g", []LeaveMember{
		{MemberID: ms[2].id, InstanceID: "static-1"}, // fenced: the instance is someone else's
		{InstanceID: "static-1"},                     // by instance id alone
		{MemberID: ms[1].id},
		{MemberID: "nobody"},
	})
	wantCode(t, "leave", code, nil)
	for i, want := range []*kerr.Error{kerr.FencedInstanceID, nil, nil, kerr.UnknownMemberID} {
		wantCode(t, "leave member", codes[i], want)
	}
	if st, _, n := h.state("g"); st != PreparingRebalance || n != 1 {
		t.Fatalf("after leave: %s with %d members", st, n)
	}
	code, codes = h.c.Leave("g", []LeaveMember{{MemberID: ms[2].id}})
	wantCode(t, "last leave", codes[0], nil)
	if st, gen, n := h.state("g"); st != Empty || gen != 2 || n != 0 {
		t.Fatalf("after all left: %s gen %d with %d members", st, gen, n)
	}
	code, _ = h.c.Leave("other", []LeaveMember{{MemberID: "x"}})
	wantCode(t, "leave unknown group", code, nil)
}

func TestInitialRebalanceDelay(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.InitialRebalanceDelay = 3 * time.Second })
	a := h.startJoin(joinReq("g", ""))
	h.advance(2 * time.Second)
	b := h.startJoin(joinReq("g", ""))
	h.advance(time.Second) // first delay over, but b arrived: wait 3 s more
	pending(t, a)
	pending(t, b)
	h.advance(3 * time.Second)
	ra, rb := recv(t, a), recv(t, b)
	if ra.Generation != 1 || rb.Generation != 1 {
		t.Fatalf("generations %d %d", ra.Generation, rb.Generation)
	}
}

// TestCooperativeSecondRound: members rejoin at once after a completed
// rebalance with changed metadata (owned partitions), as cooperative-sticky
// consumers do, and a second generation forms.
func TestCooperativeSecondRound(t *testing.T) {
	h := newHarness(t)
	ms := h.form("g", 2)
	var chans []<-chan JoinResult
	for i, m := range ms {
		r := joinReq("g", m.id, "cooperative-sticky")
		r.Protocols[0].Metadata = append(consumerMeta("t"), byte(i))
		r.Protocols = append(r.Protocols, Protocol{Name: "range", Metadata: consumerMeta("t")})
		chans = append(chans, h.startJoin(r))
	}
	var round2 []joined
	for _, ch := range chans {
		res := recv(t, ch)
		wantCode(t, "second round", res.ErrorCode, nil)
		if res.Generation != 2 {
			t.Fatalf("generation %d", res.Generation)
		}
		round2 = append(round2, joined{res.MemberID, res})
	}
	h.syncAll("g", round2)
	if st, gen, _ := h.state("g"); st != Stable || gen != 2 {
		t.Fatalf("%s gen %d", st, gen)
	}
}

func TestUnloadAnswersWaitersNotCoordinator(t *testing.T) {
	h := newHarness(t)
	ms := h.form("g", 2)
	ch := h.startJoin(joinReq("g", ms[0].id, "range", "x"))
	h.c.Unload(PartitionFor("g", testParts))
	wantCode(t, "waiting join", recv(t, ch).ErrorCode, kerr.NotCoordinator)
	wantCode(t, "heartbeat", h.c.Heartbeat("g", 1, ms[1].id, ""), kerr.NotCoordinator)
	codes := h.c.CommitOffsets(h.ctx, CommitRequest{Group: "g", Generation: -1, Offsets: []OffsetCommit{{Topic: "t", Offset: 1}}})
	wantCode(t, "commit", codes[0], kerr.NotCoordinator)
	// Other partitions' groups are untouched.
	other := "h"
	for PartitionFor(other, testParts) == PartitionFor("g", testParts) {
		other += "x"
	}
	h.form(other, 1)
}

func TestLoadInProgress(t *testing.T) {
	l := newMemLog()
	clk := &clock{t: time.Unix(1e9, 0)}
	cfg := baseConfig(t, l, clk)
	c := New(cfg)
	gate := make(chan struct{})
	l.readGate = gate
	// Give the partition something to read.
	l.Append(t.Context(), PartitionFor("g", testParts), appendBatch(nil, []kv{{groupKey("zzz"), nil}}, 0))
	done := make(chan error, 1)
	go func() { done <- c.Load(t.Context(), PartitionFor("g", testParts)) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		_, code := c.partLocked("g")
		c.mu.Unlock()
		if code == kerr.CoordinatorLoadInProgress.Code {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never loading: %v", kerr.ErrorForCode(code))
		}
		time.Sleep(time.Millisecond)
	}
	wantCode(t, "heartbeat while loading", c.Heartbeat("g", 1, "m", ""), kerr.CoordinatorLoadInProgress)
	code, _ := c.FetchOffsets("g", nil)
	wantCode(t, "fetch while loading", code, kerr.CoordinatorLoadInProgress)
	code, _ = c.List(nil, nil)
	wantCode(t, "list while loading", code, kerr.CoordinatorLoadInProgress)
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantCode(t, "heartbeat after load", c.Heartbeat("g", 1, "m", ""), kerr.UnknownMemberID)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Load(t.Context(), 0); err != ErrStopped {
		t.Fatalf("load after stop: %v", err)
	}
}
