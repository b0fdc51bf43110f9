package group

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

func commit(h *harness, group string, gen int32, member string, offsets ...OffsetCommit) []int16 {
	return h.c.CommitOffsets(h.ctx, CommitRequest{Group: group, Generation: gen, MemberID: member, Offsets: offsets})
}

func oc(topic string, p int32, off int64) OffsetCommit {
	return OffsetCommit{Topic: topic, Partition: p, Offset: off, LeaderEpoch: 3, Metadata: fmt.Sprintf("m%d", off)}
}

// fetched returns the committed offsets of group as "topic/p=offset".
func fetched(t *testing.T, h *harness, group string) string {
	t.Helper()
	code, fs := h.c.FetchOffsets(group, nil)
	wantCode(t, "fetch", code, nil)
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s/%d=%d", f.Topic, f.Partition, f.Offset))
	}
	return strings.Join(out, " ")
}

func TestCommitAndFetch(t *testing.T) {
	h := newHarness(t)
	ms := h.form("g", 2)
	a := ms[0].id
	codes := commit(h, "g", 1, a, oc("t", 0, 10), oc("t", 1, 20), oc("nope", 0, 1), oc("t", 99, 1),
		OffsetCommit{Topic: "t", Partition: 2, Offset: 5, Metadata: strings.Repeat("x", 4097)})
	for i, want := range []*kerr.Error{nil, nil, kerr.UnknownTopicOrPartition, kerr.UnknownTopicOrPartition, kerr.OffsetMetadataTooLarge} {
		wantCode(t, fmt.Sprintf("commit %d", i), codes[i], want)
	}
	if got := fetched(t, h, "g"); got != "t/0=10 t/1=20" {
		t.Fatalf("fetched %q", got)
	}
	code, fs := h.c.FetchOffsets("g", []TopicPartition{{"t", 1}, {"t", 5}, {"u", 0}})
	wantCode(t, "fetch some", code, nil)
	if fs[0].Offset != 20 || fs[0].LeaderEpoch != 3 || fs[0].Metadata != "m20" || fs[1].Offset != -1 || fs[1].LeaderEpoch != -1 || fs[2].Offset != -1 {
		t.Fatalf("fetched %+v", fs)
	}
	code, fs = h.c.FetchOffsets("unknown-group", []TopicPartition{{"t", 0}})
	wantCode(t, "fetch unknown group", code, nil)
	if fs[0].Offset != -1 {
		t.Fatalf("unknown group offset %d", fs[0].Offset)
	}

	for _, tc := range []struct {
		name   string
		group  string
		gen    int32
		member string
		want   *kerr.Error
	}{
		{"old generation", "g", 0, a, kerr.IllegalGeneration},
		{"unknown member", "g", 1, "nobody", kerr.UnknownMemberID},
		{"no generation while members are active", "g", -1, "", kerr.UnknownMemberID},
		{"generation for an unknown group", "fresh", 3, "m", kerr.IllegalGeneration},
		{"invalid group id", "", -1, "", kerr.InvalidGroupID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, tc.name, commit(h, tc.group, tc.gen, tc.member, oc("t", 0, 99))[0], tc.want)
		})
	}
	// During the sync phase commits must wait for the new generation.
	ch0, ch1 := h.startJoin(joinReq("g", ms[0].id, "range", "x")), h.startJoin(joinReq("g", ms[1].id))
	recv(t, ch0)
	recv(t, ch1)
	wantCode(t, "commit while completing", commit(h, "g", 2, a, oc("t", 0, 99))[0], kerr.RebalanceInProgress)
	if got := fetched(t, h, "g"); got != "t/0=10 t/1=20" {
		t.Fatalf("rejected commits changed offsets: %q", got)
	}

	// A group outside group management commits with generation -1.
	wantCode(t, "simple commit", commit(h, "simple", -1, "", oc("t", 3, 7))[0], nil)
	if got := fetched(t, h, "simple"); got != "t/3=7" {
		t.Fatalf("simple group: %q", got)
	}
}

func TestCommitFailureLeavesOffsets(t *testing.T) {
	h := newHarness(t)
	wantCode(t, "commit", commit(h, "g", -1, "", oc("t", 0, 1))[0], nil)
	h.log.mu.Lock()
	h.log.failAppend = errors.New("disk full")
	h.log.mu.Unlock()
	wantCode(t, "failing commit", commit(h, "g", -1, "", oc("t", 0, 2))[0], kerr.CoordinatorNotAvailable)
	wantCode(t, "failing commit of a new group", commit(h, "g2", -1, "", oc("t", 0, 2))[0], kerr.CoordinatorNotAvailable)
	if got := fetched(t, h, "g"); got != "t/0=1" {
		t.Fatalf("after failed commit: %q", got)
	}
	if st, _, _ := h.state("g2"); st != Dead {
		t.Fatalf("failed commit left group g2 %s", st)
	}

	// A leader's assignment that cannot be stored sends members back to
	// join. The follower syncs first, so that it is waiting when the store
	// fails (one that syncs after the failure is told the group is
	// rebalancing instead).
	ms := h.joinAll(joinReq("r", ""), joinReq("r", ""))
	if ms[0].id == ms[0].res.LeaderID {
		ms[0], ms[1] = ms[1], ms[0]
	}
	var chans []<-chan SyncResult
	for _, m := range ms {
		r := SyncRequest{Group: "r", Generation: 1, MemberID: m.id}
		if m.id == m.res.LeaderID {
			r.Assignments = map[string][]byte{ms[0].id: []byte("x"), ms[1].id: []byte("y")}
		}
		chans = append(chans, h.startSync(r))
	}
	for _, ch := range chans {
		wantCode(t, "sync", recv(t, ch).ErrorCode, kerr.CoordinatorNotAvailable)
	}
	if st, _, _ := h.state("r"); st != PreparingRebalance {
		t.Fatalf("after failed store: %s", st)
	}
}

func TestRestartReplaysLog(t *testing.T) {
	h := newHarness(t)
	ms := h.form("g", 2)
	commit(h, "g", 1, ms[0].id, oc("t", 0, 10), oc("t", 1, 20))
	commit(h, "g", 1, ms[1].id, oc("t", 0, 11))
	commit(h, "simple", -1, "", oc("t", 5, 50))
	h.c.CommitOffsets(h.ctx, CommitRequest{Group: "simple", Generation: -1, Retention: time.Minute, Offsets: []OffsetCommit{oc("u", 0, 1)}})
	h.awaitWrites()

	h2 := h.restart()
	if got := fetched(t, h2, "g"); got != "t/0=11 t/1=20" {
		t.Fatalf("replayed offsets %q", got)
	}
	code, fs := h2.c.FetchOffsets("g", []TopicPartition{{"t", 0}})
	wantCode(t, "fetch", code, nil)
	if fs[0].LeaderEpoch != 3 || fs[0].Metadata != "m11" {
		t.Fatalf("replayed %+v", fs[0])
	}
	if got := fetched(t, h2, "simple"); got != "t/5=50 u/0=1" {
		t.Fatalf("replayed simple group %q", got)
	}
	// The group comes back Stable with its members, generation and
	// assignments: members carry on without a rebalance.
	if st, gen, n := h2.state("g"); st != Stable || gen != 1 || n != 2 {
		t.Fatalf("replayed group: %s gen %d members %d", st, gen, n)
	}
	for _, m := range ms {
		wantCode(t, "heartbeat after restart", h2.c.Heartbeat("g", 1, m.id, ""), nil)
		res := recv(t, h2.startSync(SyncRequest{Group: "g", Generation: 1, MemberID: m.id}))
		wantCode(t, "sync after restart", res.ErrorCode, nil)
		if string(res.Assignment) != "a-"+m.id {
			t.Fatalf("assignment after restart %q", res.Assignment)
		}
	}
	d := h2.c.Describe("g")
	if d.State != Stable || d.Protocol != "range" || len(d.Members) != 2 || d.Members[0].ClientHost != "/127.0.0.1" {
		t.Fatalf("describe after restart: %+v", d)
	}
	// Members that never come back expire after their session.
	h2.advance(testSession)
	if st, gen, n := h2.state("g"); st != Empty || gen != 2 || n != 0 {
		t.Fatalf("after sessions expired: %s gen %d members %d", st, gen, n)
	}
	h2.awaitWrites()
	h3 := h2.restart()
	if st, gen, _ := h3.state("g"); st != Empty || gen != 2 {
		t.Fatalf("empty group after restart: %s gen %d", st, gen)
	}
	if got := fetched(t, h3, "g"); got != "t/0=11 t/1=20" {
		t.Fatalf("offsets after second restart %q", got)
	}
}

func TestRetentionExpiresOffsets(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxSessionTimeout = 3 * time.Hour }) // OffsetsRetention: 1h
	// A consumer group that empties: its offsets go an hour later.
	ms := h.form("g", 1)
	commit(h, "g", 1, ms[0].id, oc("t", 0, 10))
	h.c.Leave("g", []LeaveMember{{MemberID: ms[0].id}})
	// A simple consumer: each offset an hour after its commit.
	commit(h, "simple", -1, "", oc("t", 0, 1))
	h.advance(30 * time.Minute)
	commit(h, "simple", -1, "", oc("t", 1, 2))
	// An explicit retention (OffsetCommit v2-v4) wins.
	h.c.CommitOffsets(h.ctx, CommitRequest{Group: "short", Generation: -1, Retention: time.Minute, Offsets: []OffsetCommit{oc("t", 0, 3)}})
	// A Stable group keeps the offsets of topics it subscribes to ("t"),
	// and loses the others.
	long := joinReq("stable", "")
	long.SessionTimeout = 2 * time.Hour
	st := h.joinAll(long)
	h.syncAll("stable", st)
	commit(h, "stable", 1, st[0].id, oc("t", 0, 4), oc("other", 0, 5))
	h.awaitWrites()

	h.advance(2 * time.Minute)
	h.c.ExpireOffsets()
	h.awaitWrites()
	if got := fetched(t, h, "short"); got != "" {
		t.Fatalf("short retention kept %q", got)
	}
	if got := fetched(t, h, "g"); got != "t/0=10" {
		t.Fatalf("group g lost offsets early: %q", got)
	}

	h.advance(30 * time.Minute)
	h.c.Heartbeat("stable", 1, st[0].id, "")
	h.c.ExpireOffsets()
	h.awaitWrites()
	if got := fetched(t, h, "g"); got != "" {
		t.Fatalf("group g kept %q an hour after emptying", got)
	}
	if got := fetched(t, h, "simple"); got != "t/1=2" {
		t.Fatalf("simple group: %q", got)
	}
	h.advance(30 * time.Minute)
	h.c.Heartbeat("stable", 1, st[0].id, "")
	h.c.ExpireOffsets()
	h.awaitWrites()
	if got := fetched(t, h, "stable"); got != "t/0=4" {
		t.Fatalf("stable group: %q", got)
	}
	if st, _, _ := h.state("g"); st != Dead {
		t.Fatalf("group g without offsets or members still %s", st)
	}
	// Tombstones are in the log: a new coordinator sees the same.
	h2 := h.restart()
	for group, want := range map[string]string{"g": "", "simple": "", "short": "", "stable": "t/0=4"} {
		if got := fetched(t, h2, group); got != want {
			t.Errorf("after restart %s: %q, want %q", group, got, want)
		}
	}
	_, groups := h2.c.List(nil, nil)
	if len(groups) != 1 || groups[0].Group != "stable" {
		t.Fatalf("groups after expiry: %+v", groups)
	}
}

func TestCheckpointBoundsTheLog(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.CheckpointBytes = 4 << 10 })
	ms := h.form("g", 1)
	p := PartitionFor("g", testParts)
	maxSize := 0
	for i := range 500 {
		wantCode(t, "commit", commit(h, "g", 1, ms[0].id, oc("t", int32(i%4), int64(i)))[0], nil)
		h.awaitWrites()
		maxSize = max(maxSize, h.log.size(p))
	}
	start, hwm, _ := h.log.Bounds(p)
	t.Logf("log start %d, high watermark %d, largest size %d bytes", start, hwm, maxSize)
	if start == 0 {
		t.Fatal("log start never moved: no checkpoint")
	}
	if maxSize > 16<<10 {
		t.Fatalf("log grew to %d bytes with 4 KiB checkpoints", maxSize)
	}
	recs := h.log.records(t, p)
	if len(recs) > 200 {
		t.Fatalf("%d records left in the log", len(recs))
	}
	h2 := h.restart()
	if got := fetched(t, h2, "g"); got != "t/0=496 t/1=497 t/2=498 t/3=499" {
		t.Fatalf("after checkpoint and restart: %q", got)
	}
	if st, gen, n := h2.state("g"); st != Stable || gen != 1 || n != 1 {
		t.Fatalf("group after checkpoint: %s gen %d members %d", st, gen, n)
	}
}

func TestDeleteGroupsAndOffsets(t *testing.T) {
	h := newHarness(t)
	ms := h.form("busy", 1)
	commit(h, "busy", 1, ms[0].id, oc("t", 0, 1), oc("u", 0, 2))
	commit(h, "idle", -1, "", oc("t", 0, 3), oc("t", 1, 4))
	codes := h.c.DeleteGroups(h.ctx, []string{"busy", "idle", "missing", ""})
	for i, want := range []*kerr.Error{kerr.NonEmptyGroup, nil, kerr.GroupIDNotFound, kerr.InvalidGroupID} {
		wantCode(t, "delete group", codes[i], want)
	}
	if got := fetched(t, h, "idle"); got != "" {
		t.Fatalf("deleted group has offsets %q", got)
	}
	if d := h.c.Describe("idle"); d.Exists || d.State != Dead {
		t.Fatalf("deleted group: %+v", d)
	}

	// OffsetDelete: a Stable consumer group keeps the offsets of topics it
	// subscribes to ("t").
	code, codes := h.c.DeleteOffsets(h.ctx, "busy", []TopicPartition{{"t", 0}, {"u", 0}, {"nope", 0}})
	wantCode(t, "offset delete", code, nil)
	for i, want := range []*kerr.Error{kerr.GroupSubscribedToTopic, nil, kerr.UnknownTopicOrPartition} {
		wantCode(t, "offset delete partition", codes[i], want)
	}
	if got := fetched(t, h, "busy"); got != "t/0=1" {
		t.Fatalf("after offset delete: %q", got)
	}
	code, _ = h.c.DeleteOffsets(h.ctx, "missing", []TopicPartition{{"t", 0}})
	wantCode(t, "offset delete of missing group", code, kerr.GroupIDNotFound)

	h.awaitWrites()
	h2 := h.restart()
	if got := fetched(t, h2, "idle"); got != "" {
		t.Fatalf("deleted group back after restart: %q", got)
	}
	if got := fetched(t, h2, "busy"); got != "t/0=1" {
		t.Fatalf("busy after restart: %q", got)
	}
}

func TestDescribeAndList(t *testing.T) {
	h := newHarness(t)
	r := joinReq("g", "")
	r.InstanceID, r.ClientID = "inst", "cl"
	ms := h.joinAll(r, joinReq("g", ""))
	d := h.c.Describe("g")
	if d.State != CompletingRebalance || d.Protocol != "" || len(d.Members) != 2 || len(d.Members[0].Metadata) != 0 {
		t.Fatalf("describe while completing: %+v", d)
	}
	h.syncAll("g", ms)
	commit(h, "simple", -1, "", oc("t", 0, 1))
	d = h.c.Describe("g")
	if d.ErrorCode != 0 || !d.Exists || d.State != Stable || d.ProtocolType != "consumer" || d.Protocol != "range" || len(d.Members) != 2 {
		t.Fatalf("describe: %+v", d)
	}
	m := d.Members[0]
	if m.MemberID != ms[0].id || m.InstanceID != "inst" || m.ClientID != "cl" || m.ClientHost != "/127.0.0.1" ||
		string(m.Metadata) != string(consumerMeta("t")) || string(m.Assignment) != "a-"+ms[0].id {
		t.Fatalf("member: %+v", m)
	}
	if d := h.c.Describe("missing"); d.Exists || d.State != Dead || d.ErrorCode != 0 {
		t.Fatalf("missing group: %+v", d)
	}
	for _, tc := range []struct {
		states, types []string
		want          string
	}{
		{nil, nil, "g:Stable:consumer simple:Empty:"},
		{[]string{"stable"}, nil, "g:Stable:consumer"},
		{[]string{"Empty", "Dead"}, nil, "simple:Empty:"},
		{nil, []string{"Classic"}, "g:Stable:consumer simple:Empty:"},
		{nil, []string{"consumer"}, ""},
	} {
		code, ls := h.c.List(tc.states, tc.types)
		wantCode(t, "list", code, nil)
		var got []string
		for _, l := range ls {
			got = append(got, fmt.Sprintf("%s:%s:%s", l.Group, l.State, l.ProtocolType))
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("list %v %v = %q, want %q", tc.states, tc.types, got, tc.want)
		}
	}
}

// TestRunFiresTimers runs the coordinator on the real clock: a member that
// stops heartbeating is expired by Run's own timer.
func TestRunFiresTimers(t *testing.T) {
	l := newMemLog()
	cfg := baseConfig(t, l, &clock{})
	cfg.Now = nil
	cfg.MinSessionTimeout = time.Millisecond
	cfg.InitialRebalanceDelay = -1
	h := startHarness(t, cfg, l, nil)
	r := joinReq("g", "")
	r.SessionTimeout, r.RebalanceTimeout = 200*time.Millisecond, time.Second
	res := recv(t, h.startJoin(r))
	wantCode(t, "join", res.ErrorCode, nil)
	recv(t, h.startSync(SyncRequest{Group: "g", Generation: 1, MemberID: res.MemberID}))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, _, _ := h.state("g"); st == Empty {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("session never expired")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
