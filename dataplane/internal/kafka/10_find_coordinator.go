package kafka

// FindCoordinator: v0-v6.
// - Groups (key type 0): the coordinator is the leader of the group's
//   __consumer_offsets partition.
// - Transactions (key type 1): any live broker; transactions themselves are
//   not built, only transactional InitProducerId.
// - v4+ batches keys (CoordinatorKeys); older versions use Key.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/dataplane/internal/group"
)

// OffsetsTopic is Kafka's name for the committed-offsets log.
const OffsetsTopic = "__consumer_offsets"

func handleFindCoordinator(rc *Request, req *kmsg.FindCoordinatorRequest) (Reply, error) {
	b := rc.broker()
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	for _, k := range keys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key = k
		c.NodeID, c.Port = -1, -1
		id, code := b.coordinatorFor(req.CoordinatorType, k)
		c.ErrorCode = code
		if code == 0 {
			br := b.Meta.State().Brokers[id]
			c.NodeID, c.Host, c.Port = br.ID, br.Host, br.Port
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	if req.Version < 4 {
		c := resp.Coordinators[0]
		resp.ErrorCode, resp.NodeID, resp.Host, resp.Port = c.ErrorCode, c.NodeID, c.Host, c.Port
		if c.ErrorCode != 0 {
			msg := kerr.ErrorForCode(c.ErrorCode).Error()
			resp.ErrorMessage = &msg
		}
	}
	return Now(resp)
}

func (b *Broker) coordinatorFor(typ int8, key string) (int32, int16) {
	st := b.Meta.State()
	switch typ {
	case 0:
		if key == "" {
			return -1, kerr.InvalidGroupID.Code
		}
		t := st.Topics[OffsetsTopic]
		if t == nil {
			return -1, kerr.CoordinatorNotAvailable.Code
		}
		p := t.Partitions[group.PartitionFor(key, int32(len(t.Partitions)))]
		if br := st.Brokers[p.Leader]; p.Leader < 0 || br == nil || !br.Alive {
			return -1, kerr.CoordinatorNotAvailable.Code
		}
		return p.Leader, 0
	case 1:
		id := b.controllerID(st)
		if id < 0 {
			return -1, kerr.CoordinatorNotAvailable.Code
		}
		return id, 0
	default:
		return -1, kerr.InvalidRequest.Code
	}
}
