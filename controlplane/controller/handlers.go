package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/chronik-stream/chronik/controlplane/raftnet"
)

// maxWatchWait bounds one meta.watch long poll.
const maxWatchWait = 10 * time.Second

// registerHandlers serves this node's internal RPC methods on the raft
// port. They stay registered with the Mux after Run returns and then
// answer ErrStopped.
func (c *Controller) registerHandlers() {
	for _, m := range []string{methodPing, methodPropose, methodHeartbeat, methodWatch, methodTransfer, methodRetire} {
		c.cfg.Mux.Handle(m, c.handler(m))
	}
}

// handler returns the server side of an internal RPC method.
func (c *Controller) handler(method string) raftnet.Handler {
	var h func(context.Context, []byte) ([]byte, error)
	switch method {
	case methodPing:
		h = c.handlePing
	case methodPropose:
		h = c.handlePropose
	case methodHeartbeat:
		h = c.handleHeartbeat
	case methodWatch:
		h = c.handleWatch
	case methodTransfer:
		h = c.handleTransfer
	case methodRetire:
		h = c.handleRetire
	default:
		return nil
	}
	return func(ctx context.Context, _ string, req []byte) ([]byte, error) {
		if c.isStopped() {
			return nil, ErrStopped
		}
		return h(ctx, req)
	}
}

func (c *Controller) handlePing(_ context.Context, req []byte) ([]byte, error) {
	var p pingRequest
	if err := decode("ping", req, &p); err != nil {
		return nil, err
	}
	st := c.view.load()
	resp := pingResponse{
		NodeID:     c.cfg.NodeID,
		Controller: c.isCtl,
		Applied:    st.Index,
		ClusterID:  st.ClusterID,
		Retired:    c.Retired() || c.isBroker && c.noteRetirement(st),
		leaderRef:  c.leader(),
	}
	if r := c.raft.Load(); r != nil {
		resp.Term = r.CurrentTerm()
		if c.IsLeader() {
			resp.Ready = c.leaderOK.Load()
		} else {
			resp.Ready = c.isReady()
		}
	}
	return encode(resp), nil
}

// handleRetire retires this node: the leader is removing it.
func (c *Controller) handleRetire(_ context.Context, req []byte) ([]byte, error) {
	var r retireRequest
	if err := decode("retire", req, &r); err != nil {
		return nil, err
	}
	if r.NodeID != c.cfg.NodeID {
		return nil, fmt.Errorf("retire: this is node %d, not %d", c.cfg.NodeID, r.NodeID)
	}
	c.retire()
	return encode(struct{}{}), nil
}

// handlePropose applies a forwarded command if this node leads __meta, and
// otherwise names the leader it knows.
func (c *Controller) handlePropose(ctx context.Context, req []byte) ([]byte, error) {
	if !c.isCtl {
		return nil, ErrNotController
	}
	var p proposeRequest
	if err := decode("propose", req, &p); err != nil {
		return nil, err
	}
	if len(p.Nonce) != nonceLen || len(p.Command) == 0 {
		return nil, fmt.Errorf("decode propose: nonce of %d bytes, command of %d", len(p.Nonce), len(p.Command))
	}
	if !c.IsLeader() {
		return encode(proposeResponse{leaderRef: c.leader()}), nil
	}
	out, err := c.applyLocal(ctx, p.Command, p.Nonce)
	switch {
	case err == nil:
		return encode(proposeResponse{Outcome: out}), nil
	case errors.Is(err, ErrStopped), ctx.Err() != nil:
		return nil, err
	}
	// Leadership moved while the entry was in flight: the proposer
	// retries it, with the same nonce, at the new leader.
	return encode(proposeResponse{leaderRef: c.leader()}), nil
}

// handleHeartbeat records a broker's heartbeat on the leader.
func (c *Controller) handleHeartbeat(_ context.Context, req []byte) ([]byte, error) {
	if !c.isCtl {
		return nil, ErrNotController
	}
	var p heartbeatRequest
	if err := decode("heartbeat", req, &p); err != nil {
		return nil, err
	}
	if !c.IsLeader() || !c.leaderOK.Load() {
		return encode(heartbeatResponse{leaderRef: c.leader()}), nil
	}
	b := c.view.load().Brokers[p.BrokerID]
	c.live.beat(p.BrokerID, b != nil && !b.Alive)
	return encode(heartbeatResponse{Accepted: true, Unknown: b == nil, leaderRef: c.leader()}), nil
}

// handleWatch answers with the metadata image once it is newer than the
// caller's, or with no image when the wait runs out.
func (c *Controller) handleWatch(ctx context.Context, req []byte) ([]byte, error) {
	if !c.isCtl {
		return nil, ErrNotController
	}
	var p watchRequest
	if err := decode("watch", req, &p); err != nil {
		return nil, err
	}
	if !c.isReady() {
		return nil, ErrNotReady
	}
	wait := min(max(time.Duration(p.WaitMillis)*time.Millisecond, 0), maxWatchWait)
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		ch := c.view.Changed()
		if st := c.view.load(); st.Index > p.Index {
			b, err := json.Marshal(st)
			if err != nil {
				return nil, fmt.Errorf("encode metadata image: %w", err)
			}
			return encode(watchResponse{State: b, leaderRef: c.leader()}), nil
		}
		select {
		case <-ch:
		case <-t.C:
			return encode(watchResponse{leaderRef: c.leader()}), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.stopped:
			return nil, ErrStopped
		}
	}
}

// handleTransfer runs a leadership transfer asked for by another node.
func (c *Controller) handleTransfer(ctx context.Context, req []byte) ([]byte, error) {
	if !c.isCtl {
		return nil, ErrNotController
	}
	var p transferRequest
	if err := decode("transfer", req, &p); err != nil {
		return nil, err
	}
	if !c.IsLeader() {
		return encode(transferResponse{leaderRef: c.leader()}), nil
	}
	resp := transferResponse{Done: true}
	if err := c.transferLocal(ctx, p.To); err != nil {
		resp.Error = err.Error()
	}
	resp.leaderRef = c.leader()
	return encode(resp), nil
}
