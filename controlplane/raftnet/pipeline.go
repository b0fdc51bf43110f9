package raftnet

import (
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// AppendEntriesPipeline implements raft.Transport with a real pipeline: up
// to Config.PipelineDepth requests in flight on one data connection.
// Requests of a group are served in arrival order on the receiver, so
// responses complete in send order. With PipelineDepth 1 it returns
// raft.ErrPipelineReplicationNotSupported and Raft replicates one request at
// a time.
func (g *GroupTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	depth := g.m.cfg.PipelineDepth
	if depth < 2 {
		return nil, raft.ErrPipelineReplicationNotSupported
	}
	if g.ctx.Err() != nil {
		return nil, g.wrap(opAppendEntries, target, ErrTransportClosed)
	}
	s, err := g.m.awaitSession(g.ctx, string(target), laneData, g.m.cfg.RPCTimeout)
	if err != nil {
		return nil, fmt.Errorf("pipeline to %s: %w", target, err)
	}
	p := &pipeline{
		g:        g,
		s:        s,
		id:       id,
		target:   target,
		slots:    make(chan struct{}, depth),
		inflight: make(chan *appendFuture, depth),
		doneCh:   make(chan raft.AppendFuture, depth+unreadAnswers),
		stop:     make(chan struct{}),
		finished: make(chan struct{}),
	}
	if !g.m.goFunc(p.decodeLoop) {
		return nil, fmt.Errorf("pipeline to %s: %w", target, ErrClosed)
	}
	return p, nil
}

// unreadAnswers is how many completed requests a pipeline holds for Raft
// beyond its depth. Raft's decoder stops reading at the first failed
// answer while its sender goes on until it next looks (a random pick among
// ready channels); with room for only the requests in flight, the sender
// soon waited for a slot that only a read answer frees. AppendEntries
// still gives up after the RPC timeout should this fill.
const unreadAnswers = 64

// pipeline is one group's AppendEntries pipeline to one follower. Its
// decodeLoop goroutine is owned by the Mux and stopped by Close.
type pipeline struct {
	g        *GroupTransport
	s        *session
	id       raft.ServerID
	target   raft.ServerAddress
	slots    chan struct{}      // one per request in flight
	inflight chan *appendFuture // in send order
	doneCh   chan raft.AppendFuture
	stop     chan struct{}
	finished chan struct{} // closed when decodeLoop returns

	mu     sync.Mutex
	closed bool
}

// AppendEntries implements raft.AppendPipeline. It blocks while the
// pipeline is full, for at most the RPC timeout.
func (p *pipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	if err := p.takeSlot(); err != nil {
		return nil, err
	}
	f := &appendFuture{start: time.Now(), args: args, resp: resp, done: make(chan struct{})}
	var e encoder
	if err := encodeMessage(&e, args); err != nil {
		<-p.slots
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		<-p.slots
		return nil, ErrPipelineClosed
	}
	c, err := p.s.request(opAppendEntries, p.g.name, e.finish(), false)
	if err != nil {
		<-p.slots
		return nil, p.g.wrap(opAppendEntries, p.target, err)
	}
	f.call = c
	p.inflight <- f // never blocks: a slot is held
	return f, nil
}

// takeSlot waits for room for one more request in flight.
func (p *pipeline) takeSlot() error {
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	full := time.NewTimer(p.g.m.cfg.RPCTimeout)
	defer full.Stop()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-full.C:
		return p.g.wrap(opAppendEntries, p.target, ErrTimeout)
	case <-p.stop:
		return ErrPipelineClosed
	case <-p.s.done:
		return p.g.wrap(opAppendEntries, p.target, p.s.closedErr())
	case <-p.g.ctx.Done():
		return p.g.wrap(opAppendEntries, p.target, ErrTransportClosed)
	}
}

// Consumer implements raft.AppendPipeline.
func (p *pipeline) Consumer() <-chan raft.AppendFuture { return p.doneCh }

// Close implements raft.AppendPipeline. Requests still in flight complete
// with ErrPipelineClosed.
func (p *pipeline) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.stop)
	p.mu.Unlock()
	<-p.finished
	for {
		select {
		case f := <-p.inflight:
			p.s.take(f.call.id)
			f.finish(ErrPipelineClosed)
		default:
			return nil
		}
	}
}

// decodeLoop completes futures in send order.
func (p *pipeline) decodeLoop() {
	defer close(p.finished)
	for {
		select {
		case f := <-p.inflight:
			if !p.await(f) {
				return
			}
			<-p.slots
			select {
			case p.doneCh <- f:
			case <-p.stop:
				return
			case <-p.g.ctx.Done():
				return
			}
		case <-p.stop:
			return
		case <-p.g.ctx.Done():
			return
		}
	}
}

// await waits for f's response; false means the pipeline is stopping.
func (p *pipeline) await(f *appendFuture) bool {
	timeout := p.g.m.cfg.RPCTimeout
	t := time.NewTimer(time.Until(f.call.sent.Add(timeout)))
	defer t.Stop()
	select {
	case r := <-f.call.done:
		f.finish(p.decode(r, f))
		return true
	case <-t.C:
		if p.s.take(f.call.id) == nil {
			f.finish(p.decode(<-f.call.done, f))
			return true
		}
		p.s.expireIfSilent(f.call)
		f.finish(p.g.wrap(opAppendEntries, p.target, ErrTimeout))
		return true
	case <-p.stop:
	case <-p.g.ctx.Done():
	}
	p.s.take(f.call.id)
	f.finish(ErrPipelineClosed)
	return false
}

func (p *pipeline) decode(r result, f *appendFuture) error {
	if r.err != nil {
		return p.g.wrap(opAppendEntries, p.target, r.err)
	}
	if err := p.s.decode(r, f.resp); err != nil {
		return p.g.wrap(opAppendEntries, p.target, err)
	}
	p.g.noteStored(p.id, f.args, f.resp)
	return nil
}

// appendFuture implements raft.AppendFuture.
type appendFuture struct {
	start time.Time
	args  *raft.AppendEntriesRequest
	resp  *raft.AppendEntriesResponse
	call  *call
	err   error
	done  chan struct{}
}

func (f *appendFuture) finish(err error) {
	f.err = err
	close(f.done)
}

// Error implements raft.Future.
func (f *appendFuture) Error() error {
	<-f.done
	return f.err
}

// Start implements raft.AppendFuture.
func (f *appendFuture) Start() time.Time { return f.start }

// Request implements raft.AppendFuture.
func (f *appendFuture) Request() *raft.AppendEntriesRequest { return f.args }

// Response implements raft.AppendFuture.
func (f *appendFuture) Response() *raft.AppendEntriesResponse { return f.resp }
