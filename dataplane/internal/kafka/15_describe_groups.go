package kafka

// DescribeGroups: v0-v6.
// - State, protocol type, and members with member id, client id, host and
//   (v4+) group.instance.id. Protocol, member metadata and assignments are
//   shown for Stable groups only, as Kafka does.
// - A group that does not exist is Dead; v6+ also says GROUP_ID_NOT_FOUND
//   with a message (KIP-1043).
// - v3+ authorized operations: without ACLs every group operation (READ,
//   DELETE, DESCRIBE) is allowed.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/dataplane/internal/group"
)

// groupOperations is the ACL operation bitfield of READ (3), DELETE (6)
// and DESCRIBE (8).
const groupOperations = 1<<3 | 1<<6 | 1<<8

func handleDescribeGroups(rc *Request, req *kmsg.DescribeGroupsRequest) (Reply, error) {
	coord := rc.broker().Groups
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, id := range req.Groups {
		d := group.Description{Group: id, State: group.Dead, ErrorCode: kerr.CoordinatorNotAvailable.Code}
		if coord != nil {
			d = coord.Describe(id)
		}
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group, rg.ErrorCode, rg.State = id, d.ErrorCode, string(d.State)
		rg.ProtocolType, rg.Protocol = d.ProtocolType, d.Protocol
		if d.ErrorCode == 0 && !d.Exists && req.Version >= 6 {
			rg.ErrorCode = kerr.GroupIDNotFound.Code
		}
		if rg.ErrorCode != 0 && req.Version >= 6 {
			msg := kerr.ErrorForCode(rg.ErrorCode).Error()
			rg.ErrorMessage = &msg
		}
		if req.IncludeAuthorizedOperations {
			rg.AuthorizedOperations = groupOperations
		}
		for _, m := range d.Members {
			rm := kmsg.NewDescribeGroupsResponseGroupMember()
			rm.MemberID, rm.ClientID, rm.ClientHost = m.MemberID, m.ClientID, m.ClientHost
			rm.ProtocolMetadata, rm.MemberAssignment = m.Metadata, m.Assignment
			if m.InstanceID != "" {
				inst := m.InstanceID
				rm.InstanceID = &inst
			}
			rg.Members = append(rg.Members, rm)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return Now(resp)
}
