package kafka

// LeaveGroup: v0-v5.
// - v0-v2: one member id; its error is the response's error.
// - v3+: a batch of members, each by member id or, for an administrator
//   removing static members, by group.instance.id alone; one error each.
// - v5 reasons are logged only.
// - Members waiting in a rebalance get UNKNOWN_MEMBER_ID; the rest of the
//   group rebalances.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/dataplane/internal/group"
)

func handleLeaveGroup(rc *Request, req *kmsg.LeaveGroupRequest) (Reply, error) {
	b := rc.broker()
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	var leaving []group.LeaveMember
	if req.Version < 3 {
		leaving = []group.LeaveMember{{MemberID: req.MemberID}}
	} else {
		for _, m := range req.Members {
			leaving = append(leaving, group.LeaveMember{MemberID: m.MemberID, InstanceID: deref(m.InstanceID)})
			if m.Reason != nil {
				b.Log.Debug("leave group", "group", req.Group, "member", m.MemberID, "reason", *m.Reason)
			}
		}
	}
	if b.Groups == nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return Now(resp)
	}
	code, codes := b.Groups.Leave(req.Group, leaving)
	resp.ErrorCode = code
	if req.Version < 3 {
		if code == 0 {
			resp.ErrorCode = codes[0]
		}
		return Now(resp)
	}
	if code != 0 {
		return Now(resp)
	}
	for i, m := range req.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID, rm.ErrorCode = m.MemberID, m.InstanceID, codes[i]
		resp.Members = append(resp.Members, rm)
	}
	return Now(resp)
}
