package controller

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/chronik-stream/chronik/controlplane/config"
	"github.com/chronik-stream/chronik/controlplane/metadata"
)

// brokerLoop registers this node as a broker once the controller is ready,
// then heartbeats to the __meta leader every interval. It registers again
// when the leader does not know the broker (or its image disagrees with
// this node's advertised endpoint), and stops once the node is retired.
func (c *Controller) brokerLoop(ctx context.Context) {
	select {
	case <-c.ready:
	case <-ctx.Done():
		return
	}
	t := time.NewTicker(c.hbInterval)
	defer t.Stop()
	registered := false
	for {
		if c.noteRetirement(c.view.load()) {
			return
		}
		if !registered {
			registered = c.register(ctx)
		}
		if unknown := c.heartbeat(ctx); unknown {
			registered = false
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// self returns this node's broker record.
func (c *Controller) brokerRecord() metadata.Broker {
	roles := make([]string, len(c.self.Roles))
	for i, r := range c.self.Roles {
		roles[i] = string(r)
	}
	return metadata.Broker{
		ID:       c.cfg.NodeID,
		Host:     c.cfg.AdvertisedHost,
		Port:     c.cfg.AdvertisedPort,
		Rack:     c.cfg.Rack,
		Roles:    roles,
		RaftAddr: c.self.RaftAddr(),
		Alive:    true,
	}
}

// register proposes RegisterBroker unless the image already holds this
// broker as it would register, or shows it decommissioned. A dead record
// is left to the heartbeats, which revive it.
func (c *Controller) register(ctx context.Context) bool {
	want := c.brokerRecord()
	st := c.view.load()
	if c.noteRetirement(st) {
		return false
	}
	if have := st.Brokers[want.ID]; have != nil && sameEndpoint(have, &want) {
		return true
	}
	pctx, cancel := context.WithTimeout(ctx, missedHeartbeats*c.hbInterval)
	defer cancel()
	if _, err := c.propose(pctx, &metadata.Command{RegisterBroker: &want}); err != nil {
		if ctx.Err() == nil {
			c.log.Warn("register broker", "error", err)
		}
		return false
	}
	c.registeredSeen.Store(true)
	c.log.Info("broker registered", "host", want.Host, "port", want.Port, "rack", want.Rack, "roles", want.Roles)
	return true
}

func sameEndpoint(a, b *metadata.Broker) bool {
	return a.ID == b.ID && a.Host == b.Host && a.Port == b.Port && a.Rack == b.Rack &&
		a.RaftAddr == b.RaftAddr && slices.Equal(a.Roles, b.Roles)
}

// heartbeat reports to the leader, following one redirect. It returns
// true when the leader does not know this broker.
func (c *Controller) heartbeat(ctx context.Context) (unknown bool) {
	hctx, cancel := context.WithTimeout(ctx, c.hbInterval)
	defer cancel()
	req := encode(heartbeatRequest{BrokerID: c.cfg.NodeID})
	for try := 0; try < 2; try++ {
		ref := c.leader()
		if ref.LeaderID == 0 {
			return false
		}
		b, err := c.call(hctx, ref.LeaderAddr, methodHeartbeat, req)
		if err != nil {
			c.log.Debug("broker heartbeat", "leader_id", ref.LeaderID, "error", err)
			return false
		}
		var resp heartbeatResponse
		if err := decode("heartbeat response", b, &resp); err != nil {
			c.log.Warn("broker heartbeat", "leader_id", ref.LeaderID, "error", err)
			return false
		}
		if resp.Accepted {
			return resp.Unknown
		}
		c.noteLeader(resp.leaderRef)
		if resp.LeaderID == 0 || resp.LeaderID == ref.LeaderID {
			return false
		}
	}
	return false
}

// watchLoop keeps a broker-only node's image current by long-polling the
// controllers, staying with one while it answers and moving to the next
// when it does not.
func (c *Controller) watchLoop(ctx context.Context) {
	wait := max(c.hbInterval*5, time.Second)
	i := 0
	var failures int
	for ctx.Err() == nil {
		p := c.watchTarget(i)
		err := c.watchOnce(ctx, p, wait)
		if err == nil {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		c.log.Debug("watch metadata", "controller", p.ID, "error", err)
		i++
		failures++
		t := time.NewTimer(min(time.Duration(failures)*20*time.Millisecond, maxRetryWait))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// watchTarget picks the controller to watch: the leader when known, so a
// proposer's read-your-writes wait is short, else the i-th controller.
func (c *Controller) watchTarget(i int) config.Peer {
	if ref := c.leader(); ref.LeaderID != 0 && i%2 == 0 {
		if p, ok := c.cfg.Cluster.Peer(ref.LeaderID); ok {
			return p
		}
	}
	return c.controllers[i%len(c.controllers)]
}

// watchOnce runs one long poll against p and publishes a newer image.
func (c *Controller) watchOnce(ctx context.Context, p config.Peer, wait time.Duration) error {
	cctx, cancel := context.WithTimeout(ctx, wait+2*time.Second)
	defer cancel()
	cur := c.view.load()
	b, err := c.call(cctx, p.RaftAddr(), methodWatch, encode(watchRequest{Index: cur.Index, WaitMillis: wait.Milliseconds()}))
	if err != nil {
		return err
	}
	var resp watchResponse
	if err := decode("watch response", b, &resp); err != nil {
		return err
	}
	c.noteLeader(resp.leaderRef)
	if len(resp.State) == 0 {
		return nil
	}
	st, err := decodeState(resp.State)
	if err != nil {
		return err
	}
	if st.Index <= cur.Index {
		return errors.New("watch returned an image no newer than ours")
	}
	c.view.publish(st)
	c.markReady("watch")
	return nil
}
