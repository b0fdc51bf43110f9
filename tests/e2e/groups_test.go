//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/tests/framework"
)

// seen collects what group members consume: how often each value came,
// and the lowest offset each member saw per partition.
type seen struct {
	mu     sync.Mutex
	values map[string]int
	low    map[int32]int64
}

func newSeen() *seen { return &seen{values: map[string]int{}, low: map[int32]int64{}} }

func (s *seen) add(r *kgo.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values[string(r.Value)]++
	if low, ok := s.low[r.Partition]; !ok || r.Offset < low {
		s.low[r.Partition] = r.Offset
	}
}

// missing lists the values of [from, to) not consumed yet.
func (s *seen) missing(from, to int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for i := from; i < to; i++ {
		if s.values[value(i)] == 0 {
			out = append(out, value(i))
		}
	}
	return out
}

func value(i int) string { return fmt.Sprintf("rec-%05d", i) }

func produceRange(t *testing.T, ctx context.Context, cl *kgo.Client, topic string, from, to int) {
	t.Helper()
	var rs []*kgo.Record
	for i := from; i < to; i++ {
		rs = append(rs, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: []byte(value(i))})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce %d-%d: %v", from, to, err)
	}
}

// member is one franz-go group consumer that commits what it consumed
// after every poll and when partitions are taken away.
type member struct {
	name string
	cl   *kgo.Client
	stop context.CancelFunc
	done chan struct{}
}

func startMember(t *testing.T, addr, group, topic, name string, into *seen, opts ...kgo.Opt) *member {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	m := &member{name: name, stop: stop, done: make(chan struct{})}
	opts = append([]kgo.Opt{
		kgo.ClientID(name), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.HeartbeatInterval(500 * time.Millisecond),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, _ map[string][]int32) {
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				t.Logf("%s: commit on revoke: %v", name, err)
			}
		}),
	}, opts...)
	m.cl = client(t, addr, opts...)
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			fs := m.cl.PollFetches(ctx)
			fs.EachError(func(tp string, p int32, err error) {
				if ctx.Err() == nil {
					t.Logf("%s: fetch %s/%d: %v", name, tp, p, err)
				}
			})
			fs.EachRecord(into.add)
			if err := m.cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
				t.Logf("%s: commit: %v", name, err)
			}
		}
	}()
	return m
}

// close stops polling, commits what was consumed and leaves the group.
func (m *member) close(t *testing.T) {
	t.Helper()
	m.stop()
	<-m.done
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Errorf("%s: final commit: %v", m.name, err)
	}
	m.cl.Close()
}

func awaitConsumed(t *testing.T, s *seen, from, to int) {
	t.Helper()
	var left []string
	framework.Eventually(t, 60*time.Second, fmt.Sprintf("records %d-%d consumed", from, to), func() bool {
		left = s.missing(from, to)
		return len(left) == 0
	})
}

// covered reports whether d is Stable with n members whose assignments
// cover every partition exactly once.
func covered(d kadm.DescribedGroup, n, partitions int) bool {
	if d.Err != nil || d.State != "Stable" || len(d.Members) != n {
		return false
	}
	owned := map[int32]int{}
	for _, m := range d.Members {
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			return false
		}
		for _, at := range a.Topics {
			for _, p := range at.Partitions {
				owned[p]++
			}
		}
	}
	if len(owned) != partitions {
		return false
	}
	for _, c := range owned {
		if c != 1 {
			return false
		}
	}
	return true
}

// awaitStable waits until the group is Stable with n members whose
// assignments cover every partition of topic exactly once.
func awaitStable(t *testing.T, ctx context.Context, adm *kadm.Client, group string, n, partitions int) kadm.DescribedGroup {
	t.Helper()
	var d kadm.DescribedGroup
	framework.Eventually(t, 60*time.Second, fmt.Sprintf("group %s stable with %d members", group, n), func() bool {
		ds, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return false
		}
		d = ds[group]
		return covered(d, n, partitions)
	})
	return d
}

// committedAtEnd checks that the group's committed offset of every
// partition of topic is the partition's end offset.
func committedAtEnd(t *testing.T, ctx context.Context, adm *kadm.Client, group, topic string, partitions int) map[int32]int64 {
	t.Helper()
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for p := int32(0); p < int32(partitions); p++ {
		o, ok := offs.Lookup(topic, p)
		e, _ := ends.Lookup(topic, p)
		if !ok || o.Err != nil || o.At != e.Offset {
			t.Fatalf("%s %s/%d: committed %+v, end offset %d", group, topic, p, o, e.Offset)
		}
		out[p] = o.At
	}
	return out
}

func lag(t *testing.T, ctx context.Context, adm *kadm.Client, group string) int64 {
	t.Helper()
	lags, err := adm.Lag(ctx, group)
	if err != nil {
		t.Fatalf("lag of %s: %v", group, err)
	}
	l := lags[group]
	if err := l.Error(); err != nil {
		t.Fatalf("lag of %s: %v", group, err)
	}
	return l.Lag.Total()
}

// TestGroupMembersComeAndGo runs a franz-go consumer group of three on a
// six-partition topic: a member leaves and another joins, every record is
// consumed, all members stop, and a new set of members resumes exactly
// where the commits say. Then the server restarts under a running group.
func TestGroupMembersComeAndGo(t *testing.T) {
	srv := framework.StartStandalone(t)
	ctx := ctxT(t, 4*time.Minute)
	adm := kadm.NewClient(client(t, srv.Addr()))
	const topic, grp, parts = "grp", "g1", 6
	if _, err := adm.CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	pr := client(t, srv.Addr(), kgo.RequiredAcks(kgo.AllISRAcks()))
	produceRange(t, ctx, pr, topic, 0, 300)

	first := newSeen()
	m1 := startMember(t, srv.Addr(), grp, topic, "m1", first)
	m2 := startMember(t, srv.Addr(), grp, topic, "m2", first)
	m3 := startMember(t, srv.Addr(), grp, topic, "m3", first)
	awaitConsumed(t, first, 0, 300)
	d := awaitStable(t, ctx, adm, grp, 3, parts)
	if d.ProtocolType != "consumer" || d.Protocol != "cooperative-sticky" {
		t.Fatalf("described group: %+v", d)
	}
	for _, m := range d.Members {
		if !strings.HasPrefix(m.MemberID, m.ClientID+"-") || m.ClientHost != "/127.0.0.1" {
			t.Fatalf("described member: %+v", m)
		}
	}

	m1.close(t)
	m4 := startMember(t, srv.Addr(), grp, topic, "m4", first)
	produceRange(t, ctx, pr, topic, 300, 600)
	awaitConsumed(t, first, 0, 600)
	awaitStable(t, ctx, adm, grp, 3, parts)
	for _, m := range []*member{m2, m3, m4} {
		m.close(t)
	}
	committed := committedAtEnd(t, ctx, adm, grp, topic, parts)
	if l := lag(t, ctx, adm, grp); l != 0 {
		t.Fatalf("lag %d after everything was consumed", l)
	}
	produceRange(t, ctx, pr, topic, 600, 720)
	if l := lag(t, ctx, adm, grp); l != 120 {
		t.Fatalf("lag %d with 120 records unconsumed", l)
	}

	// New members resume from the commits: nothing before them comes again.
	second := newSeen()
	members := []*member{
		startMember(t, srv.Addr(), grp, topic, "m5", second),
		startMember(t, srv.Addr(), grp, topic, "m6", second),
		startMember(t, srv.Addr(), grp, topic, "m7", second),
	}
	awaitConsumed(t, second, 600, 720)
	second.mu.Lock()
	for p, low := range second.low {
		if low < committed[p] {
			t.Errorf("partition %d: consumed offset %d again, committed was %d", p, low, committed[p])
		}
	}
	for v := range second.values {
		if v < value(600) {
			t.Errorf("record %s consumed again after the commits", v)
		}
	}
	second.mu.Unlock()
	awaitStable(t, ctx, adm, grp, 3, parts)
	framework.Eventually(t, 30*time.Second, "commits of the new members", func() bool {
		return lag(t, ctx, adm, grp) == 0
	})
	before, err := adm.FetchOffsets(ctx, grp)
	if err != nil {
		t.Fatal(err)
	}

	// Restart the server under the running group.
	if code := srv.Stop(); code != 0 {
		t.Fatalf("SIGTERM exit code %d", code)
	}
	srv.Start()
	after, err := adm.FetchOffsets(ctx, grp)
	if err != nil {
		t.Fatalf("fetch offsets after restart: %v", err)
	}
	before.Each(func(o kadm.OffsetResponse) {
		a, ok := after.Lookup(o.Topic, o.Partition)
		if !ok || a.At < o.At {
			t.Errorf("%s/%d: committed %d before the restart, %+v after", o.Topic, o.Partition, o.At, a)
		}
	})
	produceRange(t, ctx, pr, topic, 720, 840)
	awaitConsumed(t, second, 600, 840)
	awaitStable(t, ctx, adm, grp, 3, parts)
	for _, m := range members {
		m.close(t)
	}
	committedAtEnd(t, ctx, adm, grp, topic, parts)
	ds, err := adm.DescribeGroups(ctx, grp)
	if err != nil || ds[grp].State != "Empty" {
		t.Fatalf("group after members left: %+v %v", ds[grp], err)
	}
	listed, err := adm.ListGroups(ctx)
	if err != nil || !slices.Contains(slices.Collect(maps.Keys(listed)), grp) {
		t.Fatalf("list groups: %v %v", listed, err)
	}
}

// TestGroupEagerAssignorsAndStaticMembers runs range and roundrobin
// members with group.instance.id: a static member that restarts gets its
// partitions back without the group losing a record.
func TestGroupEagerAssignorsAndStaticMembers(t *testing.T) {
	srv := framework.StartStandalone(t)
	ctx := ctxT(t, 3*time.Minute)
	adm := kadm.NewClient(client(t, srv.Addr()))
	const topic, grp, parts = "static", "g-static", 4
	if _, err := adm.CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	pr := client(t, srv.Addr())
	produceRange(t, ctx, pr, topic, 0, 200)
	s := newSeen()
	balancers := kgo.Balancers(kgo.RoundRobinBalancer(), kgo.RangeBalancer())
	a := startMember(t, srv.Addr(), grp, topic, "a", s, balancers, kgo.InstanceID("inst-a"))
	b := startMember(t, srv.Addr(), grp, topic, "b", s, balancers, kgo.InstanceID("inst-b"))
	awaitConsumed(t, s, 0, 200)
	d := awaitStable(t, ctx, adm, grp, 2, parts)
	if d.Protocol != "roundrobin" {
		t.Fatalf("protocol %q", d.Protocol)
	}
	var oldID string
	for _, m := range d.Members {
		if m.InstanceID == nil || !strings.HasPrefix(m.MemberID, *m.InstanceID+"-") {
			t.Fatalf("static member described as %+v", m)
		}
		if *m.InstanceID == "inst-a" {
			oldID = m.MemberID
		}
	}
	// A static member leaving through Close does not send LeaveGroup; its
	// replacement takes the instance over.
	a.close(t)
	a2 := startMember(t, srv.Addr(), grp, topic, "a2", s, balancers, kgo.InstanceID("inst-a"))
	produceRange(t, ctx, pr, topic, 200, 400)
	awaitConsumed(t, s, 0, 400)
	framework.Eventually(t, 60*time.Second, "instance inst-a under a new member id", func() bool {
		ds, err := adm.DescribeGroups(ctx, grp)
		if err != nil || !covered(ds[grp], 2, parts) {
			return false
		}
		for _, m := range ds[grp].Members {
			if m.InstanceID != nil && *m.InstanceID == "inst-a" {
				return m.MemberID != oldID
			}
		}
		return false
	})
	a2.close(t)
	b.close(t)
	committedAtEnd(t, ctx, adm, grp, topic, parts)
}

// TestGroupConfluentKafkaPython runs a python3-confluent-kafka group with
// manual commits (see testdata/py_group.py).
func TestGroupConfluentKafkaPython(t *testing.T) {
	needTool(t, "/usr/bin/python3", "-c", "import confluent_kafka")
	srv := framework.StartStandalone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := run(t, ctx, "", "/usr/bin/python3", "testdata/py_group.py", srv.Addr())
	t.Log(out)
	if !strings.Contains(out, "OK") {
		t.Fatalf("python group client:\n%s", out)
	}
	adm := kadm.NewClient(client(t, srv.Addr()))
	committedAtEnd(t, ctx, adm, "py-group", "py-group", 3)
	ds, err := adm.DescribeGroups(ctx, "py-group")
	if err != nil || ds["py-group"].State != "Empty" || ds["py-group"].ProtocolType != "consumer" {
		t.Fatalf("describe py-group: %+v %v", ds["py-group"], err)
	}
}

// TestGroupKcatBalanced consumes with kcat's balanced consumer (-G) in two
// runs: the second starts where the first one's commits left off.
func TestGroupKcatBalanced(t *testing.T) {
	needTool(t, "kcat", "-V")
	srv := framework.StartStandalone(t)
	ctx := ctxT(t, 2*time.Minute)
	adm := kadm.NewClient(client(t, srv.Addr()))
	const topic, grp = "kcat-grp", "kcat-group"
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	produceRange(t, ctx, client(t, srv.Addr()), topic, 0, 100)
	consume := func(n int) []string {
		out := run(t, ctx, "", "kcat", "-b", srv.Addr(), "-G", grp, "-X", "auto.offset.reset=earliest",
			"-c", strconv.Itoa(n), "-q", "-f", "%s\n", topic)
		return strings.Fields(out)
	}
	got := consume(60)
	if len(got) != 60 {
		t.Fatalf("first run consumed %d records", len(got))
	}
	framework.Eventually(t, 20*time.Second, "first run's commits", func() bool { return lag(t, ctx, adm, grp) == 40 })
	got = append(got, consume(40)...)
	slices.Sort(got)
	if len(slices.Compact(got)) != 100 {
		t.Fatalf("kcat runs consumed %d distinct records of 100", len(got))
	}
	framework.Eventually(t, 20*time.Second, "second run's commits", func() bool { return lag(t, ctx, adm, grp) == 0 })
}

// TestGroupAdminAndBadInput drives the admin side (commits outside group
// management, OffsetFetch for several groups, ListGroups filters,
// OffsetDelete, DeleteGroups) and checks the error codes of bad requests.
func TestGroupAdminAndBadInput(t *testing.T) {
	srv := framework.StartStandalone(t)
	ctx := ctxT(t, 90*time.Second)
	cl := client(t, srv.Addr())
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "adm"); err != nil {
		t.Fatal(err)
	}
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: "adm", Partition: 0, At: 5, LeaderEpoch: 2, Metadata: "five"})
	os.Add(kadm.Offset{Topic: "adm", Partition: 1, At: 7, LeaderEpoch: -1})
	os.Add(kadm.Offset{Topic: "nope", Partition: 0, At: 1, LeaderEpoch: -1})
	res, err := adm.CommitOffsets(ctx, "adm-g", os)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := res.Lookup("adm", 0); r.Err != nil {
		t.Fatalf("commit adm/0: %v", r.Err)
	}
	if r, _ := res.Lookup("nope", 0); !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("commit to an unknown topic: %v", r.Err)
	}
	if _, err := adm.CommitOffsets(ctx, "other-g", os); err != nil {
		t.Fatal(err)
	}

	// OffsetFetch v8+: two groups in one request.
	fetch := kmsg.NewPtrOffsetFetchRequest()
	for _, g := range []string{"adm-g", "missing-g"} {
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group = g
		fetch.Groups = append(fetch.Groups, rg)
	}
	shards := cl.RequestSharded(ctx, fetch)
	got := map[string]string{}
	for _, s := range shards {
		if s.Err != nil {
			t.Fatalf("offset fetch: %v", s.Err)
		}
		for _, g := range s.Resp.(*kmsg.OffsetFetchResponse).Groups {
			var parts []string
			for _, tp := range g.Topics {
				for _, p := range tp.Partitions {
					parts = append(parts, fmt.Sprintf("%s/%d=%d@%d:%s", tp.Topic, p.Partition, p.Offset, p.LeaderEpoch, deref(p.Metadata)))
				}
			}
			slices.Sort(parts)
			got[g.Group] = fmt.Sprintf("%d %s", g.ErrorCode, strings.Join(parts, " "))
		}
	}
	if got["adm-g"] != "0 adm/0=5@2:five adm/1=7@-1:" || got["missing-g"] != "0 " {
		t.Fatalf("multi-group offset fetch: %q", got)
	}

	listed, err := adm.ListGroups(ctx, "Empty")
	if err != nil || len(listed) != 2 || listed["adm-g"].State != "Empty" {
		t.Fatalf("list Empty groups: %+v %v", listed, err)
	}
	if listed, err := adm.ListGroups(ctx, "Stable"); err != nil || len(listed) != 0 {
		t.Fatalf("list Stable groups: %+v %v", listed, err)
	}

	del := kadm.TopicsSet{}
	del.Add("adm", 1)
	dres, err := adm.DeleteOffsets(ctx, "adm-g", del)
	if err != nil || dres.Error() != nil {
		t.Fatalf("delete offsets: %v %v", err, dres.Error())
	}
	offs, err := adm.FetchOffsets(ctx, "adm-g")
	if _, ok := offs.Lookup("adm", 1); err != nil || ok {
		t.Fatalf("offsets after delete: %+v %v", offs, err)
	}

	gres, err := adm.DeleteGroups(ctx, "adm-g", "missing-g")
	if err != nil {
		t.Fatal(err)
	}
	if gres["adm-g"].Err != nil || !errors.Is(gres["missing-g"].Err, kerr.GroupIDNotFound) {
		t.Fatalf("delete groups: %+v", gres)
	}
	if offs, err := adm.FetchOffsets(ctx, "adm-g"); err != nil || len(offs) != 0 {
		t.Fatalf("offsets of a deleted group: %+v %v", offs, err)
	}
	ds, err := adm.DescribeGroups(ctx, "adm-g")
	if err == nil && ds["adm-g"].State != "Dead" {
		t.Fatalf("deleted group described as %+v", ds["adm-g"])
	}

	// Bad requests get Kafka's codes and leave other groups alone.
	join := func(edit func(*kmsg.JoinGroupRequest)) *kmsg.JoinGroupResponse {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis, req.ProtocolType = "bad-g", 10000, 10000, "consumer"
		req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 0}}}
		edit(req)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("join: %v", err)
		}
		return resp
	}
	for _, tc := range []struct {
		name string
		edit func(*kmsg.JoinGroupRequest)
		want *kerr.Error
	}{
		{"new member", func(*kmsg.JoinGroupRequest) {}, kerr.MemberIDRequired},
		{"no protocol type", func(r *kmsg.JoinGroupRequest) { r.ProtocolType = "" }, kerr.InconsistentGroupProtocol},
		{"no protocols", func(r *kmsg.JoinGroupRequest) { r.Protocols = nil }, kerr.InconsistentGroupProtocol},
		{"unknown member", func(r *kmsg.JoinGroupRequest) { r.MemberID = "nobody" }, kerr.UnknownMemberID},
		{"session timeout too short", func(r *kmsg.JoinGroupRequest) { r.SessionTimeoutMillis = 1 }, kerr.InvalidSessionTimeout},
		{"metadata over 1 MiB", func(r *kmsg.JoinGroupRequest) { r.Protocols[0].Metadata = make([]byte, 3<<19) }, kerr.MessageTooLarge},
	} {
		if resp := join(tc.edit); resp.ErrorCode != tc.want.Code {
			t.Errorf("join with %s: %v, want %v", tc.name, kerr.ErrorForCode(resp.ErrorCode), tc.want)
		}
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "bad-g", "nobody", 1
	if resp, err := hb.RequestWith(ctx, cl); err != nil || resp.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("heartbeat of an unknown member: %+v %v", resp, err)
	}
	offs, err = adm.FetchOffsets(ctx, "other-g")
	if r, _ := offs.Lookup("adm", 0); err != nil || r.At != 5 {
		t.Fatalf("other group after bad requests: %+v %v", offs, err)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
