package kafka

// DeleteGroups: v0-v3.
// - Deletes Empty groups: their committed offsets and metadata are
//   tombstoned in __consumer_offsets before the answer, so the handler
//   waits off the connection reader.
// - Groups with members get NON_EMPTY_GROUP, unknown ones
//   GROUP_ID_NOT_FOUND; v3+ adds an error message.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleDeleteGroups(rc *Request, req *kmsg.DeleteGroupsRequest) (Reply, error) {
	coord := rc.broker().Groups
	answer := func(codes []int16) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
		for i, id := range req.Groups {
			rg := kmsg.NewDeleteGroupsResponseGroup()
			rg.Group, rg.ErrorCode = id, codes[i]
			if rg.ErrorCode != 0 && req.Version >= 3 {
				msg := kerr.ErrorForCode(rg.ErrorCode).Error()
				rg.ErrorMessage = &msg
			}
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	}
	if coord == nil {
		return Now(answer(sameCode(len(req.Groups), kerr.CoordinatorNotAvailable.Code)))
	}
	return Reply{Wait: func(ctx context.Context) (kmsg.Response, error) {
		return answer(coord.DeleteGroups(ctx, req.Groups)), nil
	}}, nil
}
