package controller

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

// dedupWindow is how many log entries a proposal's nonce is remembered
// for. A proposer retries an unanswered proposal with the same nonce (after
// a leader change or a lost connection); a retry that lands within the
// window of the original is answered with the original's outcome instead of
// being applied twice. The window is counted in log indexes, not time, so
// that every replica forgets the same nonces at the same entry.
const dedupWindow = 8192

// nonceLen is the length of a proposal nonce, carried in the Extensions of
// the raft log entry.
const nonceLen = 16

// view is a metadata image that readers load without locks and can wait
// on. The FSM owns one on controllers; broker-only nodes fill theirs from
// the watch stream.
type view struct {
	metadata.Watch
	state atomic.Pointer[metadata.State] // replaced, never mutated
}

func newView(st *metadata.State) *view {
	v := &view{}
	v.state.Store(st)
	return v
}

func (v *view) load() *metadata.State { return v.state.Load() }

// publish installs st and wakes waiters.
func (v *view) publish(st *metadata.State) {
	v.state.Store(st)
	v.Notify()
}

// waitIndex blocks until the image has applied log index idx or ctx ends.
func (v *view) waitIndex(ctx context.Context, idx uint64) error {
	for {
		ch := v.Changed()
		if v.load().Index >= idx {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for metadata index %d (at %d): %w", idx, v.load().Index, ctx.Err())
		}
	}
}

// outcome is what applying one proposal produced: the FSM's response to
// raft.Apply and the dedup table's record.
type outcome struct {
	Index  uint64          `json:"index"`
	Result metadata.Result `json:"result"`
	// Code and Msg describe a rejected command; see errorCode.
	Code string `json:"code,omitempty"`
	Msg  string `json:"msg,omitempty"`
}

// err rebuilds the rejection, keeping its identity.
func (o *outcome) err() error { return decodeError(o.Code, o.Msg) }

func newOutcome(idx uint64, res metadata.Result, err error) *outcome {
	o := &outcome{Index: idx, Result: res}
	if err != nil {
		o.Code, o.Msg = encodeError(err)
	}
	return o
}

type nonceKey [nonceLen]byte

// seenNonce is one entry of the dedup table.
type seenNonce struct {
	Nonce   []byte   `json:"nonce"`
	Outcome *outcome `json:"outcome"`
}

// fsm is the __meta state machine: metadata.State.Apply over the log, plus
// the table of recent proposal nonces. raft calls Apply, Snapshot, Restore
// and StoreConfiguration from one goroutine; readers use the view.
type fsm struct {
	*view

	mu     sync.Mutex // guards the dedup table against Snapshot readers
	seen   map[nonceKey]*outcome
	order  []nonceIndex // seen keys in log order, for eviction
	stored atomic.Uint64
	// restores counts snapshot restores, for tests and logs.
	restores atomic.Int64
}

type nonceIndex struct {
	key nonceKey
	idx uint64
}

var (
	_ raft.FSM                = (*fsm)(nil)
	_ raft.ConfigurationStore = (*fsm)(nil)
)

func newFSM() *fsm {
	return &fsm{view: newView(metadata.NewState("")), seen: map[nonceKey]*outcome{}}
}

// Apply implements raft.FSM. It returns an *outcome.
func (f *fsm) Apply(l *raft.Log) any {
	cur := f.load()
	var key nonceKey
	hasNonce := len(l.Extensions) == nonceLen
	f.mu.Lock()
	f.evictLocked(l.Index)
	f.mu.Unlock()
	if hasNonce {
		copy(key[:], l.Extensions)
		f.mu.Lock()
		prev := f.seen[key]
		f.mu.Unlock()
		if prev != nil {
			// A retried proposal: answer with the original outcome and only
			// advance the index, as Apply does for a rejected command.
			next := *cur
			next.Index = l.Index
			f.publish(&next)
			return prev
		}
	}
	var (
		next *metadata.State
		res  metadata.Result
	)
	cmd, err := metadata.DecodeCommand(l.Data)
	if err == nil {
		next, res, err = cur.Apply(l.Index, cmd)
	} else {
		c := *cur
		c.Index = l.Index
		next = &c
	}
	out := newOutcome(l.Index, res, err)
	f.mu.Lock()
	if hasNonce {
		f.seen[key] = out
		f.order = append(f.order, nonceIndex{key, l.Index})
	}
	f.mu.Unlock()
	f.publish(next)
	return out
}

// evictLocked forgets nonces older than the window. Caller holds f.mu.
func (f *fsm) evictLocked(idx uint64) {
	n := 0
	for n < len(f.order) && f.order[n].idx+dedupWindow <= idx {
		delete(f.seen, f.order[n].key)
		n++
	}
	if n > 0 {
		f.order = slices.Delete(f.order, 0, n)
	}
}

// StoreConfiguration implements raft.ConfigurationStore. The first
// configuration in the log names the cluster: its id is derived from it, so
// every replica computes the same id without a command for it.
func (f *fsm) StoreConfiguration(index uint64, c raft.Configuration) {
	f.stored.Store(index)
	cur := f.load()
	if cur.ClusterID != "" {
		return
	}
	next := *cur
	next.ClusterID = clusterID(c)
	f.publish(&next)
}

// clusterID hashes the servers of a configuration into a 22-character
// URL-safe id, the shape of Kafka's cluster ids.
func clusterID(c raft.Configuration) string {
	h := sha256.New()
	for _, s := range c.Servers {
		fmt.Fprintf(h, "%s=%s;", s.ID, s.Address)
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))[:22]
}

// snapshotImage is the on-disk form of a __meta snapshot: the metadata
// image as JSON plus the dedup table, so that a replica restored from a
// snapshot answers retries like one that replayed the log.
type snapshotImage struct {
	State  *metadata.State `json:"state"`
	Nonces []seenNonce     `json:"nonces,omitempty"`
}

// Snapshot implements raft.FSM: it captures the current image (immutable)
// and a copy of the dedup table; Persist writes them.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	img := &snapshotImage{State: f.load()}
	f.mu.Lock()
	for _, ni := range f.order {
		img.Nonces = append(img.Nonces, seenNonce{Nonce: slices.Clone(ni.key[:]), Outcome: f.seen[ni.key]})
	}
	f.mu.Unlock()
	return img, nil
}

// Persist implements raft.FSMSnapshot.
func (img *snapshotImage) Persist(sink raft.SnapshotSink) error {
	b, err := json.Marshal(img)
	if err == nil {
		_, err = sink.Write(b)
	}
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("write metadata snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("close metadata snapshot: %w", err)
	}
	return nil
}

// Release implements raft.FSMSnapshot.
func (img *snapshotImage) Release() {}

// Restore implements raft.FSM: it replaces the image and the dedup table
// with the snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("read metadata snapshot: %w", err)
	}
	img, err := decodeSnapshot(b)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.seen = make(map[nonceKey]*outcome, len(img.Nonces))
	f.order = f.order[:0]
	for _, n := range img.Nonces {
		var k nonceKey
		copy(k[:], n.Nonce)
		f.seen[k] = n.Outcome
		f.order = append(f.order, nonceIndex{k, n.Outcome.Index})
	}
	f.mu.Unlock()
	f.restores.Add(1)
	f.publish(img.State)
	return nil
}

// decodeSnapshot parses and checks a snapshot image.
func decodeSnapshot(b []byte) (*snapshotImage, error) {
	var raw struct {
		State  json.RawMessage `json:"state"`
		Nonces []seenNonce     `json:"nonces"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("parse metadata snapshot: %w", err)
	}
	st, err := decodeState(raw.State)
	if err != nil {
		return nil, fmt.Errorf("parse metadata snapshot: %w", err)
	}
	for i, n := range raw.Nonces {
		if len(n.Nonce) != nonceLen || n.Outcome == nil {
			return nil, fmt.Errorf("parse metadata snapshot: nonce %d: %w", i, errNoState)
		}
	}
	return &snapshotImage{State: st, Nonces: raw.Nonces}, nil
}

// decodeState parses a metadata image sent by a controller or kept in a
// snapshot, and rejects one readers could trip over.
func decodeState(b []byte) (*metadata.State, error) {
	if len(b) == 0 || string(b) == "null" {
		return nil, fmt.Errorf("metadata image: %w", errNoState)
	}
	st := metadata.NewState("")
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("decode metadata image: %w", err)
	}
	if st.Brokers == nil {
		st.Brokers = map[int32]*metadata.Broker{}
	}
	if st.Topics == nil {
		st.Topics = map[string]*metadata.Topic{}
	}
	for id, b := range st.Brokers {
		if b == nil {
			return nil, fmt.Errorf("metadata image: broker %s: %w", strconv.Itoa(int(id)), errNoState)
		}
	}
	for name, t := range st.Topics {
		if t == nil {
			return nil, fmt.Errorf("metadata image: topic %q: %w", name, errNoState)
		}
	}
	return st, nil
}
