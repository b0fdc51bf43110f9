package controller

import (
	"errors"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

var (
	// ErrNoLeader means no __meta leader could be reached before the
	// caller's context ended. Errors carrying it also wrap ctx.Err().
	ErrNoLeader = errors.New("controller: no __meta leader")
	// ErrStopped is returned once Run has returned or before it started.
	ErrStopped = errors.New("controller: stopped")
	// ErrNotController means the node runs no __meta replica.
	ErrNotController = errors.New("controller: not a controller node")
	// ErrNotReady means a controller cannot serve a request until it has
	// caught up with the __meta leader.
	ErrNotReady = errors.New("controller: not ready")
	// ErrUnknownNode means a node id is not a controller in cluster.toml.
	ErrUnknownNode = errors.New("controller: unknown node")
	// ErrRejected stands for a rejection whose kind this version does not
	// know; the message is the rejecting node's.
	ErrRejected = errors.New("controller: command rejected")

	errNoState = errors.New("missing or empty entry")
)

// rejections lists the metadata errors that keep their identity across a
// forwarded proposal. The codes travel on the wire: never renumber, only
// add.
var rejections = []struct {
	code string
	err  error
}{
	{"topic_exists", metadata.ErrTopicExists},
	{"unknown_topic", metadata.ErrUnknownTopic},
	{"unknown_partition", metadata.ErrUnknownPartition},
	{"invalid_partitions", metadata.ErrInvalidPartitions},
	{"unknown_broker", metadata.ErrUnknownBroker},
	{"stale_epoch", metadata.ErrStaleEpoch},
	{"bad_command", metadata.ErrBadCommand},
}

// encodeError turns a rejection into a wire code and its message.
func encodeError(err error) (code, msg string) {
	for _, r := range rejections {
		if errors.Is(err, r.err) {
			return r.code, err.Error()
		}
	}
	return "rejected", err.Error()
}

// decodeError rebuilds a rejection: same message, and errors.Is matches the
// same sentinel as on the node that applied the command.
func decodeError(code, msg string) error {
	if code == "" {
		return nil
	}
	for _, r := range rejections {
		if r.code == code {
			return &rejection{msg: msg, sentinel: r.err}
		}
	}
	return &rejection{msg: msg, sentinel: ErrRejected}
}

// rejection is a command rejected by the __meta state machine, possibly
// on another node.
type rejection struct {
	msg      string
	sentinel error
}

func (r *rejection) Error() string { return r.msg }
func (r *rejection) Unwrap() error { return r.sentinel }
