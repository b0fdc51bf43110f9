package metadata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// Service is what brokers need from the metadata owner: a consistent image,
// a way to propose changes, and a signal when the image changes.
type Service interface {
	// State returns the current image. Callers must not modify it.
	State() *State
	// Propose applies cmd through the owner of the log and returns once it
	// is applied locally.
	Propose(ctx context.Context, cmd *Command) (Result, error)
	// Changed returns a channel closed at the next change of State.
	Changed() <-chan struct{}
}

// Watch is a broadcast helper: Changed hands out a channel that Notify closes.
type Watch struct {
	mu sync.Mutex
	ch chan struct{}
}

// Changed returns a channel closed by the next Notify.
func (w *Watch) Changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

// Notify wakes every waiter.
func (w *Watch) Notify() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}

// LocalStore is the single-node metadata owner: commands are applied in
// process and the image is persisted (write, fsync, rename) after each one.
type LocalStore struct {
	path string
	Watch

	mu    sync.Mutex            // serializes Propose
	state atomic.Pointer[State] // replaced, never mutated
}

const localStoreFile = "metadata.json"

// OpenLocalStore loads dir/metadata.json, or starts an empty image with a
// new cluster id.
func OpenLocalStore(dir, newClusterID string) (*LocalStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create metadata dir: %w", err)
	}
	s := &LocalStore{path: filepath.Join(dir, localStoreFile)}
	b, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		s.state.Store(NewState(newClusterID))
		if err := s.persist(s.state.Load()); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("read metadata: %w", err)
	default:
		st := NewState("")
		if err := json.Unmarshal(b, st); err != nil {
			return nil, fmt.Errorf("parse %s: %w", s.path, err)
		}
		s.state.Store(st)
	}
	return s, nil
}

// State returns the current image.
func (s *LocalStore) State() *State {
	return s.state.Load()
}

// Propose applies cmd and persists the result before returning.
func (s *LocalStore) Propose(ctx context.Context, cmd *Command) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.State()
	next, res, err := old.Apply(old.Index+1, cmd)
	if err != nil {
		return Result{}, err
	}
	if err := s.persist(next); err != nil {
		return Result{}, err
	}
	s.state.Store(next)
	s.Notify()
	return res, nil
}

func (s *LocalStore) persist(st *State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode metadata: %w", err)
	}
	return WriteFileAtomic(s.path, b)
}

// WriteFileAtomic replaces path with data so that a crash leaves either the
// old or the new content: write a temporary file, fsync it, rename it over
// path and fsync the directory.
func WriteFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("open dir of %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir of %s: %w", path, err)
	}
	return nil
}
