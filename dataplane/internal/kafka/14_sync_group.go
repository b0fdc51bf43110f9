package kafka

// SyncGroup: v0-v5.
// - The leader sends every member's assignment; it is stored in
//   __consumer_offsets before any member gets its share, so the handler
//   waits off the connection reader. Other members wait for the leader.
// - A member syncing in a Stable group gets its current assignment again.
// - v3+ carries group.instance.id; v5 checks the protocol type and name
//   against the group's (INCONSISTENT_GROUP_PROTOCOL) and returns them.
// - Assignments over 1 MiB per member get MESSAGE_TOO_LARGE.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/dataplane/internal/group"
)

func handleSyncGroup(rc *Request, req *kmsg.SyncGroupRequest) (Reply, error) {
	coord := rc.broker().Groups
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	if coord == nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return Now(resp)
	}
	r := group.SyncRequest{Group: req.Group, Generation: req.Generation, MemberID: req.MemberID, InstanceID: deref(req.InstanceID)}
	if req.Version >= 5 {
		r.ProtocolType, r.Protocol = req.ProtocolType, req.Protocol
	}
	if len(req.GroupAssignment) > 0 {
		r.Assignments = make(map[string][]byte, len(req.GroupAssignment))
		for _, a := range req.GroupAssignment {
			r.Assignments[a.MemberID] = a.MemberAssignment
		}
	}
	return Reply{Wait: func(ctx context.Context) (kmsg.Response, error) {
		res := coord.Sync(ctx, r)
		resp.ErrorCode, resp.MemberAssignment = res.ErrorCode, res.Assignment
		if res.ErrorCode == 0 {
			resp.ProtocolType, resp.Protocol = &res.ProtocolType, &res.Protocol
		}
		return resp, nil
	}}, nil
}
