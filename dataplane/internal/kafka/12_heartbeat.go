package kafka

// Heartbeat: v0-v4.
// - Keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to join
//   again, UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION that it was dropped or is
//   behind, FENCED_INSTANCE_ID that its static instance was taken over.
// - v3+ carries group.instance.id.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleHeartbeat(rc *Request, req *kmsg.HeartbeatRequest) (Reply, error) {
	coord := rc.broker().Groups
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if coord == nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return Now(resp)
	}
	resp.ErrorCode = coord.Heartbeat(req.Group, req.Generation, req.MemberID, deref(req.InstanceID))
	return Now(resp)
}
