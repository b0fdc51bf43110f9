package kafka

// ListGroups: v0-v5.
// - Lists the groups of the __consumer_offsets partitions this node
//   coordinates, with their protocol type; COORDINATOR_LOAD_IN_PROGRESS
//   (with what is loaded) while a partition is still loading.
// - v4+: state filter and group state (KIP-518); v5+: type filter and
//   group type (KIP-848), always "classic" here. Filters ignore case.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/dataplane/internal/group"
)

func handleListGroups(rc *Request, req *kmsg.ListGroupsRequest) (Reply, error) {
	coord := rc.broker().Groups
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	if coord == nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return Now(resp)
	}
	code, groups := coord.List(req.StatesFilter, req.TypesFilter)
	resp.ErrorCode = code
	for _, g := range groups {
		rg := kmsg.NewListGroupsResponseGroup()
		rg.Group, rg.ProtocolType, rg.GroupState, rg.GroupType = g.Group, g.ProtocolType, string(g.State), group.GroupType
		resp.Groups = append(resp.Groups, rg)
	}
	return Now(resp)
}
