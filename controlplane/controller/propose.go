package controller

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

// maxRetryWait bounds the pause between attempts to reach the leader.
const maxRetryWait = 200 * time.Millisecond

// propose commits cmd through the __meta leader and returns once this
// node's image has applied it (read-your-writes). It retries across leader
// changes until ctx ends; every attempt carries the same nonce, so a
// proposal that was committed although its answer was lost is not applied
// twice.
func (c *Controller) propose(ctx context.Context, cmd *metadata.Command) (metadata.Result, error) {
	if !c.started.Load() || c.isStopped() {
		return metadata.Result{}, ErrStopped
	}
	nonce := make([]byte, nonceLen)
	_, _ = rand.Read(nonce)
	out, err := c.submit(ctx, cmd.Encode(), nonce)
	if err != nil {
		return metadata.Result{}, err
	}
	if err := c.view.waitIndex(ctx, out.Index); err != nil {
		return metadata.Result{}, fmt.Errorf("propose: %w", err)
	}
	return out.Result, out.err()
}

// submit gets data committed: applied locally on the leader, forwarded to
// it from anywhere else.
func (c *Controller) submit(ctx context.Context, data, nonce []byte) (*outcome, error) {
	var last error
	for attempt := 0; ; attempt++ {
		ch := c.events.Changed()
		ref := c.leader()
		var (
			out *outcome
			err error
		)
		switch {
		case c.isStopped():
			return nil, ErrStopped
		case ref.LeaderID == 0:
			err = ErrNoLeader
		case c.isCtl && ref.LeaderID == c.cfg.NodeID:
			out, err = c.applyLocal(ctx, data, nonce)
		default:
			out, err = c.forward(ctx, ref, data, nonce)
		}
		if out != nil {
			return out, nil
		}
		if errors.Is(err, ErrStopped) {
			return nil, err
		}
		last = err
		if ctx.Err() != nil {
			break
		}
		wait := min(time.Duration(5<<min(attempt, 6))*time.Millisecond, maxRetryWait)
		if c.waitEvent(ctx, ch, wait) != nil {
			break
		}
	}
	if errors.Is(last, ErrNoLeader) || last == nil {
		return nil, fmt.Errorf("propose: %w: %w", ErrNoLeader, ctx.Err())
	}
	return nil, fmt.Errorf("propose: %w: %w (last attempt: %v)", ErrNoLeader, ctx.Err(), last)
}

// applyLocal appends data to the log on this node, the leader, and waits
// for its outcome. Errors mean the entry may or may not commit; the
// caller retries with the same nonce.
func (c *Controller) applyLocal(ctx context.Context, data, nonce []byte) (*outcome, error) {
	r := c.raft.Load()
	if r == nil {
		return nil, ErrNotController
	}
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	f := r.ApplyLog(raft.Log{Data: data, Extensions: nonce}, timeout)
	type res struct {
		out *outcome
		err error
	}
	done := make(chan res, 1)
	if !c.goFunc(func() {
		if err := f.Error(); err != nil {
			done <- res{err: err}
			return
		}
		out, ok := f.Response().(*outcome)
		if !ok {
			done <- res{err: fmt.Errorf("apply: unexpected response %T", f.Response())}
			return
		}
		done <- res{out: out}
	}) {
		return nil, ErrStopped
	}
	select {
	case r := <-done:
		if errors.Is(r.err, raft.ErrRaftShutdown) {
			return nil, ErrStopped
		}
		if r.err != nil {
			return nil, fmt.Errorf("apply to __meta: %w", r.err)
		}
		return r.out, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("apply to __meta: %w", ctx.Err())
	}
}

// forward sends data to the leader named by ref.
func (c *Controller) forward(ctx context.Context, ref leaderRef, data, nonce []byte) (*outcome, error) {
	b, err := c.call(ctx, ref.LeaderAddr, methodPropose, encode(proposeRequest{Nonce: nonce, Command: data}))
	if err != nil {
		return nil, fmt.Errorf("forward to leader %d: %w", ref.LeaderID, err)
	}
	var resp proposeResponse
	if err := decode("propose response", b, &resp); err != nil {
		return nil, err
	}
	if resp.Outcome == nil {
		c.noteLeader(resp.leaderRef)
		return nil, fmt.Errorf("node %d is no longer the leader", ref.LeaderID)
	}
	return resp.Outcome, nil
}

// call invokes method on the node at addr; a call to this node runs the
// handler directly instead of going through the network.
func (c *Controller) call(ctx context.Context, addr, method string, req []byte) ([]byte, error) {
	if addr == c.cfg.Mux.LocalAddr() {
		if h := c.handler(method); h != nil {
			return h(ctx, addr, req)
		}
	}
	return c.cfg.Mux.Call(ctx, addr, method, req)
}

// TransferLeadership hands __meta leadership to node to, or with to == 0 to
// the most up-to-date follower, and waits until the new leader is known
// here. Called on a follower, it asks the leader to do it.
func (c *Controller) TransferLeadership(ctx context.Context, to int32) error {
	if to != 0 && !c.isController(to) {
		return fmt.Errorf("transfer __meta leadership to %d: %w", to, ErrUnknownNode)
	}
	for attempt := 0; ; attempt++ {
		ch := c.events.Changed()
		ref := c.leader()
		var (
			done bool
			err  error
		)
		switch {
		case c.isStopped():
			return ErrStopped
		case ref.LeaderID == 0:
		case c.isCtl && ref.LeaderID == c.cfg.NodeID:
			done, err = true, c.transferLocal(ctx, to)
		default:
			done, err = c.forwardTransfer(ctx, ref, to)
		}
		if done {
			return err
		}
		if c.waitEvent(ctx, ch, min(time.Duration(5<<min(attempt, 6))*time.Millisecond, maxRetryWait)) != nil {
			return fmt.Errorf("transfer __meta leadership: %w: %w", ErrNoLeader, errors.Join(ctx.Err(), err))
		}
	}
}

func (c *Controller) isController(id int32) bool {
	for _, p := range c.controllers {
		if p.ID == id {
			return true
		}
	}
	return false
}

// transferLocal runs the transfer on the leader and waits until another
// node (node to, if set) is seen as leader.
func (c *Controller) transferLocal(ctx context.Context, to int32) error {
	if to == c.cfg.NodeID {
		return nil
	}
	r := c.raft.Load()
	for {
		var f raft.Future
		if to == 0 {
			f = r.LeadershipTransfer()
		} else {
			p, _ := c.cfg.Cluster.Peer(to)
			f = r.LeadershipTransferToServer(raft.ServerID(strconv.Itoa(int(to))), raft.ServerAddress(p.RaftAddr()))
		}
		done := make(chan error, 1)
		if !c.goFunc(func() { done <- f.Error() }) {
			return ErrStopped
		}
		var err error
		select {
		case err = <-done:
		case <-ctx.Done():
			return fmt.Errorf("transfer __meta leadership to %d: %w", to, ctx.Err())
		}
		if err == nil {
			break
		}
		// Raft hands the transfer to its leader loop without blocking and
		// refuses it when the loop is busy at that instant: try again.
		if !errors.Is(err, raft.ErrEnqueueTimeout) {
			return fmt.Errorf("transfer __meta leadership to %d: %w", to, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("transfer __meta leadership to %d: %w (%w)", to, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
		// A follower refuses every transfer the same way.
		if r.State() != raft.Leader {
			return fmt.Errorf("transfer __meta leadership to %d: %w", to, ErrNotLeader)
		}
	}
	c.log.Info("__meta leadership transferred", "to", to)
	for {
		ch := c.events.Changed()
		id := c.LeaderID()
		if id != 0 && id != c.cfg.NodeID && (to == 0 || id == to) {
			return nil
		}
		if err := c.waitEvent(ctx, ch, 50*time.Millisecond); err != nil {
			return fmt.Errorf("wait for leader %d: %w", to, err)
		}
	}
}

// forwardTransfer asks the leader to transfer; done is false when the node
// turned out not to be the leader.
func (c *Controller) forwardTransfer(ctx context.Context, ref leaderRef, to int32) (bool, error) {
	b, err := c.call(ctx, ref.LeaderAddr, methodTransfer, encode(transferRequest{To: to}))
	if err != nil {
		return false, fmt.Errorf("forward transfer to leader %d: %w", ref.LeaderID, err)
	}
	var resp transferResponse
	if err := decode("transfer response", b, &resp); err != nil {
		return false, err
	}
	if !resp.Done {
		c.noteLeader(resp.leaderRef)
		return false, fmt.Errorf("node %d is no longer the leader", ref.LeaderID)
	}
	if resp.Error != "" {
		return true, fmt.Errorf("transfer __meta leadership on leader %d: %s", ref.LeaderID, resp.Error)
	}
	return true, nil
}
