package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"connectrpc.com/connect"

	adminv1 "github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1"
)

// maxRESTBody bounds the JSON body of a REST form.
const maxRESTBody = 64 << 10

// transferBody is the optional JSON body of POST /admin/transfer-leader.
// Without a body the node that receives the request gives away every
// leadership it holds; {"meta":true} or {"topic":..,"partition":..}
// narrows that to one group, and "to" names the receiving node.
type transferBody struct {
	Meta      bool    `json:"meta,omitempty"`
	Topic     *string `json:"topic,omitempty"`
	Partition *int32  `json:"partition,omitempty"`
	To        int32   `json:"to,omitempty"`
	TimeoutMs int64   `json:"timeout_ms,omitempty"`
}

// rebalanceBody is the optional JSON body of POST /admin/rebalance.
type rebalanceBody struct {
	DryRun bool `json:"dry_run,omitempty"`
}

// restChange is one leadership move in a REST answer.
type restChange struct {
	Topic          string `json:"topic"`
	Partition      int32  `json:"partition"`
	PreviousLeader int32  `json:"previous_leader"`
	NewLeader      int32  `json:"new_leader"`
	Term           uint64 `json:"term"`
}

// transferAnswer is the answer of POST /admin/transfer-leader.
type transferAnswer struct {
	NodeID  int32        `json:"node_id,omitempty"`
	Changes []restChange `json:"changes"`
	// Skipped lists the partitions left with this node because no other
	// live replica is in sync.
	Skipped []string `json:"skipped,omitempty"`
}

// restMove is one step of a plan in a REST answer.
type restMove struct {
	Topic         string `json:"topic"`
	Partition     int32  `json:"partition"`
	AddReplica    int32  `json:"add_replica,omitempty"`
	RemoveReplica int32  `json:"remove_replica,omitempty"`
	NewLeader     int32  `json:"new_leader,omitempty"`
}

// rebalanceAnswer is the answer of POST /admin/rebalance.
type rebalanceAnswer struct {
	RebalanceID string     `json:"rebalance_id,omitempty"`
	DryRun      bool       `json:"dry_run"`
	Moves       []restMove `json:"moves"`
}

// decodeBody reads an optional JSON object into v: an empty body leaves v
// as it is; unknown fields, trailing data and bodies over maxRESTBody are
// errors.
func decodeBody(r io.Reader, v any) error {
	b, err := io.ReadAll(io.LimitReader(r, maxRESTBody+1))
	if err != nil {
		return errorf(ErrInvalidRequest, "read body: %v", err)
	}
	if len(b) > maxRESTBody {
		return errorf(ErrInvalidRequest, "body is larger than %d bytes", maxRESTBody)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(ErrInvalidRequest, "body is not the expected JSON object: %v", err)
	}
	if dec.More() {
		return errorf(ErrInvalidRequest, "body has data after its JSON object")
	}
	return nil
}

// parseTransferBody turns the body of POST /admin/transfer-leader into a
// target, with node self as the default.
func parseTransferBody(r io.Reader, self int32) (transferTarget, time.Duration, error) {
	var b transferBody
	if err := decodeBody(r, &b); err != nil {
		return transferTarget{}, 0, err
	}
	t := transferTarget{to: b.To}
	switch {
	case b.To < 0:
		return t, 0, errorf(ErrInvalidRequest, "to must be a node id, got %d", b.To)
	case b.TimeoutMs < 0:
		return t, 0, errorf(ErrInvalidRequest, "timeout_ms must be positive, got %d", b.TimeoutMs)
	case b.Meta && (b.Topic != nil || b.Partition != nil):
		return t, 0, errorf(ErrInvalidRequest, "give either meta or topic and partition, not both")
	case (b.Topic == nil) != (b.Partition == nil):
		return t, 0, errorf(ErrInvalidRequest, "topic and partition go together")
	case b.Meta:
		t.meta = true
	case b.Topic != nil:
		if *b.Topic == "" {
			return t, 0, errorf(ErrInvalidRequest, "topic must not be empty")
		}
		t.partition = &adminv1.PartitionRef{Topic: *b.Topic, Partition: *b.Partition}
	default:
		t.node, t.isNode = self, true
	}
	return t, time.Duration(b.TimeoutMs) * time.Millisecond, nil
}

// restTransferLeader serves POST /admin/transfer-leader: the rolling
// restart's "move everything this node leads elsewhere", or one group.
func (s *Service) restTransferLeader(w http.ResponseWriter, r *http.Request) {
	t, timeout, err := parseTransferBody(r.Body, s.b.NodeID())
	if err != nil {
		writeRESTError(w, err)
		return
	}
	if timeout == 0 {
		timeout = s.cfg.TransferTimeout
	}
	t.timeout = timeout
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	res, err := s.transfer(ctx, t)
	if err != nil {
		writeRESTError(w, err)
		return
	}
	out := transferAnswer{Changes: []restChange{}, Skipped: res.skipped}
	if t.isNode {
		out.NodeID = t.node
	}
	for _, c := range res.changes {
		out.Changes = append(out.Changes, restChange{Topic: c.GetTopic(), Partition: c.GetPartition(),
			PreviousLeader: c.GetPreviousLeaderId(), NewLeader: c.GetNewLeaderId(), Term: c.GetTerm()})
	}
	writeJSON(w, http.StatusOK, out)
}

// restRebalance serves POST /admin/rebalance through StartRebalance, so it
// is forwarded to the active controller like the RPC.
func (s *Service) restRebalance(w http.ResponseWriter, r *http.Request) {
	var b rebalanceBody
	if err := decodeBody(r.Body, &b); err != nil {
		writeRESTError(w, err)
		return
	}
	resp, err := s.StartRebalance(r.Context(), connect.NewRequest(&adminv1.StartRebalanceRequest{DryRun: b.DryRun}))
	if err != nil {
		writeRESTError(w, err)
		return
	}
	out := rebalanceAnswer{RebalanceID: resp.Msg.GetRebalanceId(), DryRun: b.DryRun, Moves: []restMove{}}
	for _, m := range resp.Msg.GetMoves() {
		out.Moves = append(out.Moves, restMove{Topic: m.GetTopic(), Partition: m.GetPartition(),
			AddReplica: m.GetAddReplica(), RemoveReplica: m.GetRemoveReplica(), NewLeader: m.GetNewLeaderId()})
	}
	status := http.StatusOK
	if out.RebalanceID != "" {
		status = http.StatusAccepted // running in the background
	}
	writeJSON(w, status, out)
}

// restUnknown answers any other /admin/ request.
func (s *Service) restUnknown(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/admin/transfer-leader", "/admin/rebalance":
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": fmt.Sprintf("%s takes POST, not %s", r.URL.Path, r.Method)})
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no admin endpoint %s; there are POST /admin/transfer-leader and POST /admin/rebalance", r.URL.Path)})
	}
}

func writeRESTError(w http.ResponseWriter, err error) {
	c := code(err)
	var ce *connect.Error
	if errors.As(err, &ce) {
		c = ce.Code()
	}
	writeJSON(w, httpStatus(c), map[string]string{"error": errorMessage(err)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"encode answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
