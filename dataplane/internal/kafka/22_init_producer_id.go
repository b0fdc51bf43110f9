package kafka

// InitProducerId: v0-v5.
// - Without a transactional id: a fresh producer id at epoch 0, or (v3+,
//   KIP-360) the given producer's epoch bumped, so a producer can recover
//   from a sequence error without losing its id; an exhausted epoch gets a
//   new id.
// - With a transactional id: the id's producer is kept in the metadata log;
//   each init bumps its epoch, which fences the previous instance (its
//   batches get INVALID_PRODUCER_EPOCH). Transactions themselves
//   (AddPartitionsToTxn, EndTxn) are not built.
// - Producer ids are allocated from the metadata log in blocks.

import (
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

const producerIDBlock = 1000

func handleInitProducerID(rc *Request, req *kmsg.InitProducerIDRequest) (Reply, error) {
	b := rc.broker()
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		if *req.TransactionalID == "" {
			resp.ErrorCode = kerr.InvalidRequest.Code
			return Now(resp)
		}
		res, err := b.Meta.Propose(rc.Ctx, &metadata.Command{InitTxnProducer: req.TransactionalID})
		if err != nil {
			resp.ErrorCode = errCode(err)
			return Now(resp)
		}
		resp.ProducerID, resp.ProducerEpoch = res.ProducerID, res.ProducerEpoch
		return Now(resp)
	}
	if req.ProducerID >= 0 && req.ProducerEpoch >= 0 && req.ProducerEpoch < math.MaxInt16-1 {
		resp.ProducerID, resp.ProducerEpoch = req.ProducerID, req.ProducerEpoch+1
		return Now(resp)
	}
	id, err := b.nextProducerID(rc)
	if err != nil {
		resp.ErrorCode = errCode(err)
		return Now(resp)
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return Now(resp)
}

// nextProducerID hands out ids from a block reserved in the metadata log.
func (b *Broker) nextProducerID(rc *Request) (int64, error) {
	b.pidMu.Lock()
	defer b.pidMu.Unlock()
	if b.pidNext == b.pidEnd {
		n := int64(producerIDBlock)
		res, err := b.Meta.Propose(rc.Ctx, &metadata.Command{AllocProducerIDs: &n})
		if err != nil {
			return -1, err
		}
		b.pidNext, b.pidEnd = res.FirstProducerID, res.FirstProducerID+n
	}
	id := b.pidNext
	b.pidNext++
	return id, nil
}
