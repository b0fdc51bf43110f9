package controller

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

// leadLoop starts the leader-only work when this node gains __meta
// leadership and cancels it when it loses it, with a context per term.
func (c *Controller) leadLoop(ctx context.Context) {
	r := c.raft.Load()
	type term struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	var cur *term
	end := func() {
		if cur != nil {
			cur.cancel()
			<-cur.done
			cur = nil
		}
	}
	defer end()
	for {
		select {
		case isLeader := <-r.LeaderCh():
			// A missed flap shows up as the same value twice: always
			// start over, so every term gets its own context.
			end()
			if !isLeader {
				continue
			}
			termCtx, cancel := context.WithCancel(ctx)
			t := &term{cancel: cancel, done: make(chan struct{})}
			if !c.goFunc(func() { defer close(t.done); c.leadTerm(termCtx) }) {
				close(t.done)
			}
			cur = t
		case <-ctx.Done():
			return
		}
	}
}

// leadTerm is one term of leadership: catch up with everything committed
// before it, then watch broker liveness and controller membership.
func (c *Controller) leadTerm(ctx context.Context) {
	r := c.raft.Load()
	term := r.CurrentTerm()
	log := c.log.With("term", term)
	defer func() {
		c.leaderOK.Store(false)
		c.events.Notify()
		log.Info("__meta leadership ended")
	}()
	if err := r.Barrier(0).Error(); err != nil {
		log.Warn("__meta leader could not catch up", "error", err)
		return
	}
	if ctx.Err() != nil {
		return
	}
	c.leaderOK.Store(true)
	c.events.Notify()
	log.Info("__meta leadership established", "metadata_index", c.view.load().Index)
	c.live.run(ctx, log)
}

// liveness is the leader's record of broker heartbeats. The heartbeat
// handler writes it; the leader's liveness loop reads it and proposes
// BrokerState changes.
type liveness struct {
	c       *Controller
	mu      sync.Mutex
	heard   map[int32]time.Time // last heartbeat, this term
	noticed map[int32]time.Time // when the broker was last seen turning alive
	wasLive map[int32]bool
	wake    chan struct{}
}

func newLiveness(c *Controller) *liveness {
	return &liveness{c: c, wake: make(chan struct{}, 1)}
}

// timeout is how long a broker may stay silent before it is marked dead.
func (l *liveness) timeout() time.Duration { return missedHeartbeats * l.c.hbInterval }

// beat records a heartbeat and, if the broker is marked dead, wakes the
// loop to revive it at once.
func (l *liveness) beat(id int32, dead bool) {
	l.mu.Lock()
	if l.heard != nil {
		l.heard[id] = time.Now()
	}
	l.mu.Unlock()
	if dead {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// run checks every broker twice per heartbeat interval until ctx ends. A
// term starts with a clean record: every broker gets a full timeout from
// the start of the term, or from when it (re)appears alive in the image,
// before it is judged. So it does after the check itself fell far behind
// its schedule.
func (l *liveness) run(ctx context.Context, log *slog.Logger) {
	start := time.Now()
	l.mu.Lock()
	l.heard = map[int32]time.Time{}
	l.noticed = map[int32]time.Time{}
	l.wasLive = map[int32]bool{}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.heard, l.noticed, l.wasLive = nil, nil, nil
		l.mu.Unlock()
	}()
	every := max(l.c.hbInterval/2, 10*time.Millisecond)
	tick := time.NewTicker(every)
	defer tick.Stop()
	last := start
	for {
		now := time.Now()
		if now.Sub(last) > every+l.c.hbInterval {
			// This loop itself was starved (a stalled process, an
			// overloaded host): the silence may be ours, not the
			// brokers'. Judge them again from now on.
			log.Warn("liveness check was delayed; restarting broker timeouts", "delay", now.Sub(last))
			start = now
		}
		for _, cmd := range l.check(start, now) {
			b := cmd.BrokerState
			if b.Alive {
				log.Info("broker heartbeats resumed; marking it alive", "broker_id", b.ID)
			} else {
				log.Warn("broker missed heartbeats; marking it dead", "broker_id", b.ID, "timeout", l.timeout())
			}
			pctx, cancel := context.WithTimeout(ctx, l.timeout())
			_, err := l.c.propose(pctx, cmd)
			cancel()
			if err != nil && ctx.Err() == nil {
				log.Warn("record broker liveness", "broker_id", b.ID, "error", err)
			}
		}
		l.c.reconcileVoters(ctx, log)
		last = time.Now()
		select {
		case <-tick.C:
		case <-l.wake:
		case <-ctx.Done():
			return
		}
	}
}

// check compares the image with the heartbeats heard and returns the
// BrokerState commands that bring it up to date.
func (l *liveness) check(start, now time.Time) []*metadata.Command {
	st := l.c.view.load()
	l.mu.Lock()
	defer l.mu.Unlock()
	var cmds []*metadata.Command
	for id, b := range st.Brokers {
		if b.Alive && !l.wasLive[id] {
			l.noticed[id] = now
		}
		l.wasLive[id] = b.Alive
		last := start
		if t := l.noticed[id]; t.After(last) {
			last = t
		}
		heard, ok := l.heard[id]
		if ok && heard.After(last) {
			last = heard
		}
		recent := now.Sub(last) <= l.timeout()
		switch {
		case b.Alive && !recent:
			cmds = append(cmds, brokerState(b, false))
		case !b.Alive && ok && now.Sub(heard) <= l.timeout():
			cmds = append(cmds, brokerState(b, true))
		}
	}
	return cmds
}

func brokerState(b *metadata.Broker, alive bool) *metadata.Command {
	return &metadata.Command{BrokerState: &metadata.BrokerStateCmd{
		ID: b.ID, Alive: alive, Draining: b.Draining, Decommissioning: b.Decommissioning,
	}}
}

// reconcileVoters adds controllers of cluster.toml that are missing from
// the __meta configuration (a node added to the cluster) once they answer
// health checks, one at a time, unless they answer as retired. The last
// health round may predate a retirement (this node may have just been
// elected), so a node is asked once more, directly, before it is added.
// Removing controllers is left to an explicit decommission (RetireNode).
func (c *Controller) reconcileVoters(ctx context.Context, log *slog.Logger) {
	r := c.raft.Load()
	f := r.GetConfiguration()
	if f.Error() != nil {
		return
	}
	have := map[raft.ServerID]bool{}
	for _, s := range f.Configuration().Servers {
		have[s.ID] = true
	}
	alive := c.health.snapshot()
	for _, p := range c.controllers {
		id := raft.ServerID(strconv.Itoa(int(p.ID)))
		if have[id] {
			continue
		}
		if a, ok := alive[p.ID]; !ok || a.Retired || c.wasRemoved(p.ID) {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, c.hbInterval)
		resp, err := c.ping(pctx, p.RaftAddr())
		cancel()
		if err != nil || resp.Retired {
			continue
		}
		log.Info("adding controller to __meta", "peer_id", p.ID, "raft_addr", p.RaftAddr())
		if err := r.AddVoter(id, raft.ServerAddress(p.RaftAddr()), f.Index(), c.hbInterval).Error(); err != nil && ctx.Err() == nil {
			c.log.Warn("add controller to __meta", "peer_id", p.ID, "error", err)
		}
		return
	}
}
