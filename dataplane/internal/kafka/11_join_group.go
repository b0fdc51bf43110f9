package kafka

// JoinGroup: v0-v9.
// - Blocks until the group's join phase completes (all members joined, or
//   the rebalance timeout passed), so the handler waits off the
//   connection reader.
// - v0 has no rebalance timeout: the session timeout stands in.
// - v4+: a new dynamic member first gets MEMBER_ID_REQUIRED with its
//   member id and must join again with it (KIP-394).
// - v5+: group.instance.id (static membership, KIP-345); a new join with
//   a known instance id fences the old member id (FENCED_INSTANCE_ID).
// - v7+ returns the protocol type; v8 reason is logged only; v9
//   SkipAssignment is always false (assignors run in the clients).
// - The protocol is the one every member supports that most members
//   prefer. Member metadata over 1 MiB gets MESSAGE_TOO_LARGE.

import (
	"context"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/dataplane/internal/group"
)

func handleJoinGroup(rc *Request, req *kmsg.JoinGroupRequest) (Reply, error) {
	coord := rc.broker().Groups
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	if coord == nil {
		resp.ErrorCode, resp.Generation, resp.MemberID = kerr.CoordinatorNotAvailable.Code, -1, req.MemberID
		return Now(resp)
	}
	r := group.JoinRequest{
		Group: req.Group, MemberID: req.MemberID, InstanceID: deref(req.InstanceID),
		ClientID: rc.ClientID, ClientHost: clientHost(rc.Remote),
		SessionTimeout:       time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		RebalanceTimeout:     time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond,
		ProtocolType:         req.ProtocolType,
		RequireKnownMemberID: req.Version >= 4,
	}
	if req.Version == 0 {
		r.RebalanceTimeout = r.SessionTimeout
	}
	if req.Version < 5 {
		r.InstanceID = ""
	}
	for _, p := range req.Protocols {
		r.Protocols = append(r.Protocols, group.Protocol{Name: p.Name, Metadata: p.Metadata})
	}
	if req.Reason != nil {
		rc.broker().Log.Debug("join group", "group", req.Group, "member", req.MemberID, "reason", *req.Reason)
	}
	return Reply{Wait: func(ctx context.Context) (kmsg.Response, error) {
		res := coord.Join(ctx, r)
		resp.ErrorCode, resp.Generation, resp.LeaderID, resp.MemberID = res.ErrorCode, res.Generation, res.LeaderID, res.MemberID
		if res.ErrorCode == 0 {
			resp.ProtocolType, resp.Protocol = &res.ProtocolType, &res.Protocol
		}
		for _, m := range res.Members {
			rm := kmsg.NewJoinGroupResponseMember()
			rm.MemberID, rm.ProtocolMetadata = m.MemberID, m.Metadata
			if m.InstanceID != "" {
				inst := m.InstanceID
				rm.InstanceID = &inst
			}
			resp.Members = append(resp.Members, rm)
		}
		return resp, nil
	}}, nil
}

// clientHost renders a client address the way Kafka shows it: "/1.2.3.4".
func clientHost(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		host = addr.String()
	}
	return "/" + host
}
