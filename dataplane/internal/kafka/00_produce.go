package kafka

// Produce: v3-v11 (record batches, magic 2, only).
// - acks 0 (no response), 1 (written), -1 (fsynced in single-node mode,
//   committed by Raft in cluster mode). Other values: INVALID_REQUIRED_ACKS.
// - Batches are validated (framing, CRC-32C, max.message.bytes) and stored
//   verbatim whatever their compression, with base offset and leader epoch
//   assigned by the partition.
// - Idempotent producers: retries of one of the last five batches get their
//   original offsets; gaps get OUT_OF_ORDER_SEQUENCE_NUMBER; old epochs get
//   INVALID_PRODUCER_EPOCH.
// - Internal topics (__consumer_offsets) take no client writes:
//   INVALID_TOPIC_EXCEPTION, as in Kafka.
// - Transactions are not implemented (AddPartitionsToTxn is not
//   advertised); a transactional batch gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
// - Appends of one connection keep request order: submission happens on the
//   connection's reader, only the wait for durability runs concurrently.
// - Not built: record-level error details (v8 RecordErrors), LogAppendTime.

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/dataplane/internal/batch"
	"github.com/chronik-stream/chronik/dataplane/internal/partition"
)

type produceWait struct {
	resp  *kmsg.ProduceResponseTopicPartition
	waits []func(context.Context) (partition.AppendResult, error)
}

func handleProduce(rc *Request, req *kmsg.ProduceRequest) (Reply, error) {
	b := rc.broker()
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	if req.Acks != 0 && req.Acks != 1 && req.Acks != -1 {
		return Now(produceErrorAll(req, resp, kerr.InvalidRequiredAcks.Code))
	}
	st := b.Meta.State()
	var pending []produceWait
	for _, rt := range req.Topics {
		ot := kmsg.NewProduceResponseTopic()
		ot.Topic = rt.Topic
		ot.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		resp.Topics = append(resp.Topics, ot)
		parts := resp.Topics[len(resp.Topics)-1].Partitions
		t := st.Topics[rt.Topic]
		internal := t != nil && t.Internal
		for i, rp := range rt.Partitions {
			op := &parts[i]
			*op = kmsg.NewProduceResponseTopicPartition()
			op.Partition, op.BaseOffset, op.LogAppendTime, op.LogStartOffset = rp.Partition, -1, -1, -1
			if st.Partition(rt.Topic, rp.Partition) == nil {
				op.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			}
			if internal {
				// Only the broker writes its internal topics, as in Kafka.
				op.ErrorCode = kerr.InvalidTopicException.Code
				msg := "cannot append to internal topic " + rt.Topic
				op.ErrorMessage = &msg
				continue
			}
			p := b.Replicas.Partition(rt.Topic, rp.Partition)
			if p == nil {
				op.ErrorCode = kerr.NotLeaderForPartition.Code
				continue
			}
			waits, code := submitBatches(rc, b, p, rp.Records, req)
			op.ErrorCode = code
			if code == 0 {
				pending = append(pending, produceWait{resp: op, waits: waits})
			}
		}
	}
	wait := func(ctx context.Context) (kmsg.Response, error) {
		ctx, cancel := context.WithTimeout(ctx, time.Duration(max(req.TimeoutMillis, 0))*time.Millisecond+time.Second)
		defer cancel()
		awaitAll(ctx, pending)
		if req.Acks == 0 {
			return nil, nil
		}
		return resp, nil
	}
	if len(pending) == 0 {
		resp, _ := wait(rc.Ctx)
		return Reply{Resp: resp}, nil
	}
	return Reply{Wait: wait}, nil
}

// awaitAll waits for every partition's batches. The partitions wait at the
// same time, so that their fsyncs (or Raft commits) overlap rather than
// queue behind each other; the batches of one partition are waited for in
// order.
func awaitAll(ctx context.Context, pending []produceWait) {
	if len(pending) == 1 {
		pending[0].await(ctx)
		return
	}
	var wg sync.WaitGroup
	for i := range pending {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pending[i].await(ctx)
		}()
	}
	wg.Wait()
}

// await waits for one partition's batches and fills in its response.
func (pw produceWait) await(ctx context.Context) {
	for i, w := range pw.waits {
		res, err := w(ctx)
		if err != nil {
			pw.resp.ErrorCode = errCode(err)
			return
		}
		if i == 0 {
			pw.resp.BaseOffset, pw.resp.LogStartOffset = res.BaseOffset, res.LogStartOffset
		}
	}
}

// submitBatches validates and submits each batch of one partition's records.
func submitBatches(rc *Request, b *Broker, p *partition.Partition, records []byte, req *kmsg.ProduceRequest) ([]func(context.Context) (partition.AppendResult, error), int16) {
	if err := p.Validate(records); err != nil {
		return nil, errCode(err)
	}
	batches, _, _ := batch.Split(records)
	var waits []func(context.Context) (partition.AppendResult, error)
	for _, raw := range batches {
		h, _ := batch.ParseHeader(raw)
		if h.IsTransactional() || req.TransactionID != nil {
			return nil, kerr.TransactionalIDAuthorizationFailed.Code
		}
		w, err := b.Replicas.Produce(rc.Ctx, p, raw, req.Acks)
		if err != nil {
			return nil, errCode(err)
		}
		waits = append(waits, w)
	}
	return waits, 0
}

func produceErrorAll(req *kmsg.ProduceRequest, resp *kmsg.ProduceResponse, code int16) *kmsg.ProduceResponse {
	for _, rt := range req.Topics {
		ot := kmsg.NewProduceResponseTopic()
		ot.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			op := kmsg.NewProduceResponseTopicPartition()
			op.Partition, op.ErrorCode, op.BaseOffset = rp.Partition, code, -1
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return resp
}
