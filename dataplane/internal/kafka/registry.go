package kafka

import (
	"context"
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Request is what a handler knows about the request it serves.
type Request struct {
	// Ctx is cancelled when the connection is torn down. It carries the
	// request's trace span.
	Ctx      context.Context
	Version  int16
	ClientID string
	Remote   net.Addr
	conn     *conn
}

// Reply is a handler's answer: a response ready now, or a Wait that runs on
// its own goroutine (replication, fsync, long polls, rebalances) and whose
// response is still written in request order. A nil Resp with no Wait sends
// nothing (produce with acks=0).
type Reply struct {
	Resp kmsg.Response
	Wait func(ctx context.Context) (kmsg.Response, error)
}

// Now wraps a ready response.
func Now(r kmsg.Response) (Reply, error) { return Reply{Resp: r}, nil }

type api struct {
	min, max int16
	handle   func(*Request, kmsg.Request) (Reply, error)
}

// handler adapts a typed handler to the registry.
func handler[R kmsg.Request](min, max int16, f func(*Request, R) (Reply, error)) api {
	return api{min: min, max: max, handle: func(rc *Request, req kmsg.Request) (Reply, error) {
		r, ok := req.(R)
		if !ok {
			return Reply{}, fmt.Errorf("kafka: request type %T for key %d", req, req.Key())
		}
		return f(rc, r)
	}}
}

const (
	produceKey     = 0
	apiVersionsKey = 18
)

// registry is the one table of what this broker implements: ApiVersions is
// built from it and nothing else. Version ranges are those whose semantics
// the handler implements, capped by what kmsg can encode.
var registry map[int16]api

func init() {
	registry = map[int16]api{
		0:  handler(3, 11, handleProduce),
		1:  handler(4, 16, handleFetch),
		2:  handler(1, 8, handleListOffsets),
		3:  handler(0, 12, handleMetadata),
		8:  handler(2, 9, handleOffsetCommit),
		9:  handler(1, 9, handleOffsetFetch),
		10: handler(0, 6, handleFindCoordinator),
		11: handler(0, 9, handleJoinGroup),
		12: handler(0, 4, handleHeartbeat),
		13: handler(0, 5, handleLeaveGroup),
		14: handler(0, 5, handleSyncGroup),
		15: handler(0, 6, handleDescribeGroups),
		16: handler(0, 5, handleListGroups),
		18: handler(0, 4, handleApiVersions),
		19: handler(2, 7, handleCreateTopics),
		20: handler(1, 6, handleDeleteTopics),
		21: handler(0, 2, handleDeleteRecords),
		22: handler(0, 5, handleInitProducerID),
		23: handler(2, 4, handleOffsetForLeaderEpoch),
		32: handler(0, 4, handleDescribeConfigs),
		33: handler(0, 2, handleAlterConfigs),
		37: handler(0, 3, handleCreatePartitions),
		42: handler(0, 3, handleDeleteGroups),
		44: handler(0, 1, handleIncrementalAlterConfigs),
		47: handler(0, 0, handleOffsetDelete),
		60: handler(0, 1, handleDescribeCluster),
	}
	for k, a := range registry {
		req := kmsg.RequestForKey(k)
		if req == nil || a.max > req.MaxVersion() {
			panic(fmt.Sprintf("kafka: registry key %d max %d beyond kmsg", k, a.max))
		}
	}
}
