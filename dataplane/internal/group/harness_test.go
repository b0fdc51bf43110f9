package group

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// memLog is an in-memory OffsetLog that behaves like a partition: it
// assigns offsets, serves whole batches from an offset and moves its log
// start on DeleteRecords.
type memLog struct {
	mu         sync.Mutex
	parts      map[int32]*memPart
	failAppend error         // when set, appends fail with it
	readGate   chan struct{} // when set, Read waits for it to close
	appends    int
}

type memPart struct {
	start, next int64
	batches     [][]byte // with base offsets assigned
}

func newMemLog() *memLog { return &memLog{parts: map[int32]*memPart{}} }

func (l *memLog) part(p int32) *memPart {
	mp := l.parts[p]
	if mp == nil {
		mp = &memPart{}
		l.parts[p] = mp
	}
	return mp
}

func (l *memLog) Append(ctx context.Context, p int32, batch []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.failAppend != nil {
		return l.failAppend
	}
	mp := l.part(p)
	b := append([]byte(nil), batch...)
	binary.BigEndian.PutUint64(b, uint64(mp.next))
	mp.next += int64(int32(binary.BigEndian.Uint32(b[23:]))) + 1
	mp.batches = append(mp.batches, b)
	l.appends++
	return nil
}

func (l *memLog) Read(p int32, offset int64, maxBytes int) ([]byte, error) {
	l.mu.Lock()
	gate := l.readGate
	l.mu.Unlock()
	if gate != nil {
		<-gate
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []byte
	for _, b := range l.part(p).batches {
		base := int64(binary.BigEndian.Uint64(b))
		last := base + int64(int32(binary.BigEndian.Uint32(b[23:])))
		if last < offset {
			continue
		}
		if len(out) > 0 && len(out)+len(b) > maxBytes {
			break
		}
		out = append(out, b...)
	}
	return out, nil
}

func (l *memLog) Bounds(p int32) (int64, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	mp := l.part(p)
	return mp.start, mp.next, nil
}

func (l *memLog) DeleteRecords(ctx context.Context, p int32, offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	mp := l.part(p)
	if offset > mp.next {
		return errors.New("memlog: offset beyond high watermark")
	}
	mp.start = max(mp.start, offset)
	kept := mp.batches[:0]
	for _, b := range mp.batches {
		last := int64(binary.BigEndian.Uint64(b)) + int64(int32(binary.BigEndian.Uint32(b[23:])))
		if last >= mp.start {
			kept = append(kept, b)
		}
	}
	mp.batches = kept
	return nil
}

// size is the bytes the partition holds.
func (l *memLog) size(p int32) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, b := range l.part(p).batches {
		n += len(b)
	}
	return n
}

// records decodes every record partition p holds, in order.
func (l *memLog) records(t *testing.T, p int32) []entry {
	t.Helper()
	_, hwm, _ := l.Bounds(p)
	data, _ := l.Read(p, 0, 1<<30)
	var out []entry
	next, skipped, err := decodeBatches(data, func(e entry) { out = append(out, e) })
	if err != nil || skipped != 0 || len(data) > 0 && next != hwm {
		t.Fatalf("decode log: next %d (hwm %d), skipped %d, err %v", next, hwm, skipped, err)
	}
	return out
}

// clock is a manual clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// tlog sends slog output to t.Log.
type tlog struct{ t *testing.T }

func (w tlog) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(b[:len(b)-1]))
	return len(b), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// harness is a running coordinator over a memLog with a manual clock.
type harness struct {
	t   *testing.T
	c   *Coordinator
	log *memLog
	clk *clock
	cfg Config
	ctx context.Context
}

const (
	testParts   = 4
	testSession = 10 * time.Second
	testRebal   = 30 * time.Second
	testDelay   = 3 * time.Second
)

func baseConfig(t *testing.T, l *memLog, clk *clock) Config {
	return Config{
		Logger: testLogger(t), Log: l, NumPartitions: testParts, Now: clk.Now,
		TopicExists:           func(topic string, p int32) bool { return topic != "nope" && p >= 0 && p < 8 },
		MinSessionTimeout:     time.Second,
		InitialRebalanceDelay: testDelay,
		OffsetsRetention:      time.Hour,
	}
}

func newHarness(t *testing.T, edit ...func(*Config)) *harness {
	t.Helper()
	l := newMemLog()
	clk := &clock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	cfg := baseConfig(t, l, clk)
	for _, e := range edit {
		e(&cfg)
	}
	return startHarness(t, cfg, l, clk)
}

// startHarness runs a coordinator with every partition loaded, stopped at
// the end of the test.
func startHarness(t *testing.T, cfg Config, l *memLog, clk *clock) *harness {
	t.Helper()
	h := &harness{t: t, c: New(cfg), log: l, clk: clk, cfg: cfg}
	ctx, cancel := context.WithCancel(context.Background())
	h.ctx = ctx
	done := make(chan error, 1)
	go func() { done <- h.c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("coordinator did not stop")
		}
	})
	for p := int32(0); p < cfg.NumPartitions; p++ {
		if err := h.c.Load(ctx, p); err != nil {
			t.Fatalf("load %d: %v", p, err)
		}
	}
	return h
}

// restart stops nothing but starts a second coordinator over the same log,
// as a new leader would after a restart.
func (h *harness) restart() *harness {
	h.t.Helper()
	cfg := h.cfg
	cfg.Logger = testLogger(h.t).With("incarnation", "restarted")
	return startHarness(h.t, cfg, h.log, h.clk)
}

func (h *harness) advance(d time.Duration) {
	h.clk.Advance(d)
	h.c.fireTimers()
}

// startJoin registers a join synchronously and returns where its answer
// arrives.
func (h *harness) startJoin(r JoinRequest) <-chan JoinResult {
	h.c.mu.Lock()
	res, wait := h.c.joinLocked(r)
	h.c.mu.Unlock()
	if wait == nil {
		ch := make(chan JoinResult, 1)
		ch <- res
		return ch
	}
	return wait
}

func (h *harness) startSync(r SyncRequest) <-chan SyncResult {
	h.c.mu.Lock()
	res, wait := h.c.syncLocked(r)
	h.c.mu.Unlock()
	if wait == nil {
		ch := make(chan SyncResult, 1)
		ch <- res
		return ch
	}
	return wait
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("no answer within 10s")
		panic("unreachable")
	}
}

func pending[T any](t *testing.T, ch <-chan T) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("answered too early: %+v", v)
	default:
	}
}

func wantCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	wantCode := int16(0)
	if want != nil {
		wantCode = want.Code
	}
	if got != wantCode {
		t.Fatalf("%s: error %v, want %v", what, kerr.ErrorForCode(got), kerr.ErrorForCode(wantCode))
	}
}

// consumerMeta is a consumer's subscription metadata for topics.
func consumerMeta(topics ...string) []byte {
	m := kmsg.NewConsumerMemberMetadata()
	m.Topics = topics
	return m.AppendTo(nil)
}

func joinReq(group, member string, protocols ...string) JoinRequest {
	r := JoinRequest{Group: group, MemberID: member, ClientID: "client", ClientHost: "/127.0.0.1",
		SessionTimeout: testSession, RebalanceTimeout: testRebal, ProtocolType: "consumer"}
	if len(protocols) == 0 {
		protocols = []string{"range"}
	}
	for _, p := range protocols {
		r.Protocols = append(r.Protocols, Protocol{Name: p, Metadata: consumerMeta("t")})
	}
	return r
}

// joined is a member after a completed join.
type joined struct {
	id  string
	res JoinResult
}

// form brings n dynamic members into a Stable group: they join together,
// the leader assigns "a-<member>" to each, and all sync.
func (h *harness) form(group string, n int) []joined {
	h.t.Helper()
	var rs []JoinRequest
	for range n {
		rs = append(rs, joinReq(group, ""))
	}
	ms := h.joinAll(rs...)
	h.syncAll(group, ms)
	return ms
}

// joinAll joins members into an Empty group at once and lets the initial
// rebalance delay pass.
func (h *harness) joinAll(rs ...JoinRequest) []joined {
	h.t.Helper()
	var chans []<-chan JoinResult
	for _, r := range rs {
		chans = append(chans, h.startJoin(r))
	}
	h.advance(h.cfg.InitialRebalanceDelay)
	h.advance(h.cfg.InitialRebalanceDelay)
	var ms []joined
	for i, ch := range chans {
		r := recv(h.t, ch)
		wantCode(h.t, fmt.Sprintf("join %d", i), r.ErrorCode, nil)
		ms = append(ms, joined{r.MemberID, r})
	}
	return ms
}

// syncAll syncs every member of ms, the leader assigning "a-<member>".
func (h *harness) syncAll(group string, ms []joined) {
	h.t.Helper()
	var leader joined
	for _, m := range ms {
		if m.id == m.res.LeaderID {
			leader = m
		}
	}
	if leader.id == "" {
		h.t.Fatalf("no leader among %+v", ms)
	}
	assign := map[string][]byte{}
	for _, m := range leader.res.Members {
		assign[m.MemberID] = []byte("a-" + m.MemberID)
	}
	var chans []<-chan SyncResult
	for _, m := range ms {
		r := SyncRequest{Group: group, Generation: m.res.Generation, MemberID: m.id}
		if m.id == leader.id {
			r.Assignments = assign
		}
		chans = append(chans, h.startSync(r))
	}
	for i, ch := range chans {
		r := recv(h.t, ch)
		wantCode(h.t, "sync", r.ErrorCode, nil)
		if string(r.Assignment) != "a-"+ms[i].id {
			h.t.Fatalf("member %s got assignment %q", ms[i].id, r.Assignment)
		}
	}
}

func (h *harness) state(group string) (State, int32, int) {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	_, g, _ := h.c.lookupLocked(group)
	if g == nil {
		return Dead, -1, 0
	}
	return g.state, g.generation, len(g.members)
}

// awaitWrites waits until the partition writers have applied everything
// queued.
func (h *harness) awaitWrites() {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		h.c.mu.Lock()
		busy := false
		for _, p := range h.c.parts {
			busy = busy || len(p.queue) > 0
			for _, g := range p.groups {
				busy = busy || g.inflight > 0
			}
		}
		h.c.mu.Unlock()
		if !busy {
			return
		}
		time.Sleep(time.Millisecond)
	}
	h.t.Fatal("writes did not drain within 10s")
}
