package controller

import (
	"encoding/json"
	"fmt"
)

// Internal RPC methods served on the raft port. Requests and responses are
// JSON; the metadata image and commands are JSON already.
const (
	// methodPing is the health check: every node answers it, controllers
	// with their view of __meta.
	methodPing = "meta.ping"
	// methodPropose forwards a command to the __meta leader.
	methodPropose = "meta.propose"
	// methodHeartbeat is a broker's liveness report to the leader.
	methodHeartbeat = "meta.heartbeat"
	// methodWatch long-polls a controller for a newer metadata image.
	methodWatch = "meta.watch"
	// methodTransfer asks the leader to hand __meta leadership over.
	methodTransfer = "meta.transfer"
	// methodRetire tells a node that the leader is removing it from the
	// cluster (decommission).
	methodRetire = "meta.retire"
)

// leaderRef names the __meta leader as the answering node sees it; ID 0
// means it knows none.
type leaderRef struct {
	LeaderID   int32  `json:"leader_id,omitempty"`
	LeaderAddr string `json:"leader_addr,omitempty"`
}

type pingRequest struct {
	From int32 `json:"from"`
}

type pingResponse struct {
	NodeID     int32 `json:"node_id"`
	Controller bool  `json:"controller,omitempty"`
	// Ready is set by the leader once it has applied everything committed
	// before its term, and by followers once they caught up.
	Ready   bool   `json:"ready,omitempty"`
	Term    uint64 `json:"term,omitempty"`
	Applied uint64 `json:"applied,omitempty"` // index of the metadata image
	// ClusterID is the id of the cluster the image belongs to, derived
	// from the group's first configuration; empty until that is applied.
	ClusterID string `json:"cluster_id,omitempty"`
	// Retired is set by a node that was decommissioned; the leader does
	// not add it back to __meta.
	Retired bool `json:"retired,omitempty"`
	leaderRef
}

type retireRequest struct {
	From   int32 `json:"from"`
	NodeID int32 `json:"node_id"` // the node told; it refuses another id
}

type proposeRequest struct {
	Nonce   []byte          `json:"nonce"`
	Command json.RawMessage `json:"command"`
}

type proposeResponse struct {
	// Outcome is nil when the node was not the leader.
	Outcome *outcome `json:"outcome,omitempty"`
	leaderRef
}

type heartbeatRequest struct {
	BrokerID int32 `json:"broker_id"`
}

type heartbeatResponse struct {
	// Accepted is false when the node is not the leader.
	Accepted bool `json:"accepted,omitempty"`
	// Unknown asks the broker to register (again).
	Unknown bool `json:"unknown,omitempty"`
	leaderRef
}

type watchRequest struct {
	// Index is the index of the image the caller has.
	Index uint64 `json:"index"`
	// WaitMillis bounds the long poll.
	WaitMillis int64 `json:"wait_ms"`
}

type watchResponse struct {
	// State is the image when it is newer than the request's index.
	State json.RawMessage `json:"state,omitempty"`
	leaderRef
}

type transferRequest struct {
	To int32 `json:"to"`
}

type transferResponse struct {
	// Done is false when the node was not the leader.
	Done bool `json:"done,omitempty"`
	// Error is set when the leader tried and failed.
	Error string `json:"error,omitempty"`
	leaderRef
}

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("controller: encode %T: %v", v, err)) // plain data only
	}
	return b
}

// decode parses one wire message of the named kind.
func decode(kind string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", kind, err)
	}
	return nil
}
