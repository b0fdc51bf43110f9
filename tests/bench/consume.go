package bench

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// consumeFetchMaxWait is the consumers' fetch.max.wait, the Java default.
const consumeFetchMaxWait = 500 * time.Millisecond

// consumeResult is what reading a full topic from its start measured.
type consumeResult struct {
	Records int64         `json:"records"`
	Bytes   int64         `json:"bytes"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

// consumeCase fills a fresh topic with 1 KiB records (acks=1), then reads it
// from the start ConsumeReads times and returns the median read.
func (r *runner) consumeCase(ctx context.Context, t *target) (consumeResult, error) {
	p := r.cfg.Plan
	topic := r.topicName("consume")
	cctx, cancel := context.WithTimeout(ctx, p.ScaleLimit)
	err := r.createTopic(cctx, t, topic, p.ConsumeParts)
	cancel()
	if err != nil {
		return consumeResult{}, err
	}
	defer r.deleteTopic(ctx, t, topic)
	fill, err := r.produceLoad(ctx, t, r.producerOpts(topic, 1, p.Linger), 1024, p.ConsumeRecs, p.ConsumeLimit)
	if err != nil {
		return consumeResult{}, fmt.Errorf("fill %s: %w", topic, err)
	}
	r.settle(ctx) // the fill's writeback is not the consumer's to pay for
	// The fill's warm-up records are in the topic too.
	want := fill.Records + int64(p.Producers)
	var reads []consumeResult
	for range max(p.ConsumeReads, 1) {
		res, err := r.readFromStart(ctx, t, topic, want)
		if err != nil {
			return res, err
		}
		reads = append(reads, res)
	}
	// One read lasts a fraction of a second here: the median of a few
	// keeps one descheduled moment from deciding the figure.
	slices.SortFunc(reads, func(a, b consumeResult) int { return cmp.Compare(a.Elapsed, b.Elapsed) })
	return reads[len(reads)/2], nil
}

// readFromStart reads want records of topic from the start of each of its
// partitions with a fresh direct-partition consumer (no group).
func (r *runner) readFromStart(ctx context.Context, t *target, topic string, want int64) (consumeResult, error) {
	p := r.cfg.Plan
	offsets := map[int32]kgo.Offset{}
	for i := int32(0); i < p.ConsumeParts; i++ {
		offsets[i] = kgo.NewOffset().AtStart()
	}
	cl, err := r.newClient(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchMaxWait(consumeFetchMaxWait))
	if err != nil {
		return consumeResult{}, err
	}
	defer cl.Close()
	lctx, cancel := context.WithTimeout(ctx, p.ConsumeLimit)
	defer cancel()
	var res consumeResult
	start := time.Now()
	for res.Records < want && lctx.Err() == nil {
		fs := cl.PollFetches(lctx)
		if err := fetchErr(fs); err != nil {
			return res, fmt.Errorf("consume %s: %w", topic, err)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			res.Records++
			res.Bytes += int64(len(rec.Value))
		})
		res.Elapsed = time.Since(start)
	}
	if res.Records < want {
		return res, fmt.Errorf("consumed %d of %d records within %v", res.Records, want, p.ConsumeLimit)
	}
	return res, nil
}

// fetchErr is the first real error of a poll; the end of the poll's own
// context is not one.
func fetchErr(fs kgo.Fetches) error {
	for _, e := range fs.Errors() {
		if errors.Is(e.Err, context.DeadlineExceeded) || errors.Is(e.Err, context.Canceled) {
			continue
		}
		return fmt.Errorf("partition %d: %w", e.Partition, e.Err)
	}
	return nil
}

// steadyResult is what the rate-limited phase measured.
type steadyResult struct {
	Records int64          `json:"records"`
	Produce LatencySummary `json:"produce_latency"` // scheduled send to ack
	E2E     LatencySummary `json:"e2e_latency"`     // Produce call to consumer receipt
}

// steadyCase produces SteadySize records at SteadyRate with acks=-1 and
// linger 0 to a one-partition topic while one consumer tails it. Produce
// latency counts from each record's scheduled send time, so a stalled
// producer cannot hide its queue; end-to-end latency from the Produce call
// to the consumer's receipt, both clocks in this process.
func (r *runner) steadyCase(ctx context.Context, t *target) (steadyResult, error) {
	p := r.cfg.Plan
	topic := r.topicName("steady")
	cctx, cancel := context.WithTimeout(ctx, p.ScaleLimit)
	err := r.createTopic(cctx, t, topic, 1)
	cancel()
	if err != nil {
		return steadyResult{}, err
	}
	defer r.deleteTopic(ctx, t, topic)
	prod, err := r.newClient(t, r.producerOpts(topic, -1, 0)...)
	if err != nil {
		return steadyResult{}, err
	}
	defer prod.Close()
	cons, err := r.newClient(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(consumeFetchMaxWait))
	if err != nil {
		return steadyResult{}, err
	}
	defer cons.Close()

	tail := &tailer{cl: cons, base: time.Now()}
	tctx, stopTail := context.WithCancel(ctx)
	tailDone := make(chan error, 1)
	go func() { tailDone <- tail.run(tctx) }() // owned here: joined below
	res, err := r.steadyProduce(ctx, prod, tail)
	stopTail()
	if terr := <-tailDone; err == nil && terr != nil {
		err = terr
	}
	res.E2E = tail.lat.Summary()
	return res, err
}

// steadyProduce warms up, then paces records and waits for the tailer to
// see every one of them.
func (r *runner) steadyProduce(ctx context.Context, prod *kgo.Client, tail *tailer) (steadyResult, error) {
	p := r.cfg.Plan
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: tail.stamp(r.payloads.get(p.SteadySize))}).FirstErr(); err != nil {
		return steadyResult{}, fmt.Errorf("steady warm-up produce: %w", err)
	}
	if err := awaitCount(ctx, &tail.got, 1, 10*time.Second); err != nil {
		return steadyResult{}, fmt.Errorf("steady warm-up record never reached the consumer: %w", err)
	}
	tail.measure.Store(true)
	var lat Latencies
	var acked, failed atomic.Int64
	total := int64(p.SteadyRate) * int64(p.SteadyFor) / int64(time.Second)
	interval := time.Second / time.Duration(p.SteadyRate)
	lctx, cancel := context.WithTimeout(ctx, p.SteadyFor+30*time.Second)
	defer cancel()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	start := time.Now()
	var sent int64
	for ; sent < total && lctx.Err() == nil; sent++ {
		sched := start.Add(time.Duration(sent) * interval)
		if d := time.Until(sched); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-lctx.Done():
			}
		}
		prod.Produce(lctx, &kgo.Record{Value: tail.stamp(r.payloads.get(p.SteadySize))}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
				return
			}
			lat.Add(time.Since(sched))
			acked.Add(1)
		})
	}
	if err := prod.Flush(lctx); err != nil {
		return steadyResult{}, fmt.Errorf("steady flush: %w", err)
	}
	res := steadyResult{Records: acked.Load(), Produce: lat.Summary()}
	if n := failed.Load(); n > 0 {
		return res, fmt.Errorf("steady: %d of %d records failed", n, sent)
	}
	if err := awaitCount(ctx, &tail.got, 1+res.Records, 10*time.Second); err != nil {
		return res, fmt.Errorf("steady: consumer: %w", err)
	}
	return res, nil
}

// tailer consumes the steady topic and records end-to-end latency.
type tailer struct {
	cl      *kgo.Client
	base    time.Time
	got     atomic.Int64
	measure atomic.Bool
	lat     Latencies
}

// stamp returns a copy of payload whose first 8 bytes carry now, as
// nanoseconds since the tailer's base.
func (t *tailer) stamp(payload []byte) []byte {
	v := make([]byte, max(len(payload), 8))
	copy(v, payload)
	binary.BigEndian.PutUint64(v, uint64(time.Since(t.base)))
	return v
}

func (t *tailer) run(ctx context.Context) error {
	for ctx.Err() == nil {
		fs := t.cl.PollFetches(ctx)
		if err := fetchErr(fs); err != nil {
			return fmt.Errorf("steady consumer: %w", err)
		}
		now := time.Since(t.base)
		fs.EachRecord(func(rec *kgo.Record) {
			if len(rec.Value) >= 8 && t.measure.Load() {
				t.lat.Add(now - time.Duration(binary.BigEndian.Uint64(rec.Value)))
			}
			t.got.Add(1)
		})
	}
	return nil
}

// awaitCount waits until c reaches n, ctx ends or limit passes.
func awaitCount(ctx context.Context, c *atomic.Int64, n int64, limit time.Duration) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for c.Load() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("have %d of %d: %w", c.Load(), n, context.Cause(ctx))
		case <-deadline.C:
			return fmt.Errorf("have %d of %d after %v", c.Load(), n, limit)
		case <-tick.C:
		}
	}
	return nil
}
