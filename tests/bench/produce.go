package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Producer settings shared by the throughput cases; they go into the
// report's settings lines.
const (
	produceBufferedBytes = 8 << 20 // kgo MaxBufferedBytes per producer client
	produceBatchBytes    = 1 << 20 // kgo ProducerBatchMaxBytes
	produceInflight      = 5       // requests in flight per broker (idempotent default)
)

// produceResult is what one produce run measured.
type produceResult struct {
	Records int64          `json:"records"`
	Bytes   int64          `json:"bytes"`
	Elapsed time.Duration  `json:"elapsed_ns"`
	Latency LatencySummary `json:"latency"`
	// DiskBytes is what the target's processes wrote to storage during
	// the run, all nodes together; diskOK says it could be read.
	DiskBytes int64 `json:"disk_bytes,omitempty"`
	diskOK    bool
}

func (p produceResult) mbps() float64   { return mbps(p.Bytes, p.Elapsed) }
func (p produceResult) recsps() float64 { return perSec(p.Records, p.Elapsed) }

// metricDiskWrite names the produce rows of diskMetric.
const metricDiskWrite = "disk write"

// diskMetric is the storage write rate of the target's processes while the
// run lasted, on every node together: with replication or a second log
// copy it is a multiple of the payload rate. None for targets without
// processes of their own.
func (p produceResult) diskMetric() []metric {
	if !p.diskOK {
		return nil
	}
	return []metric{{metricDiskWrite, "MB/s", limitDisk, mbps(p.DiskBytes, p.Elapsed)}}
}

// producerOpts are the kgo options of a throughput producer for acks.
func (r *runner) producerOpts(topic string, acks int16, linger time.Duration) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(linger),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(produceBatchBytes),
		kgo.MaxBufferedBytes(produceBufferedBytes),
	}
	if acks == 1 {
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
			kgo.MaxProduceRequestsInflightPerBroker(produceInflight))
	} else {
		// Cancellation may then fail records in flight: a hung server must
		// not hold the run past its time bound.
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.AllowIdempotentProduceCancellation())
	}
	return opts
}

// produceCase runs one cell of the produce matrix against t on a fresh
// topic, bounded by the plan's record count and duration.
func (r *runner) produceCase(ctx context.Context, t *target, c ProduceCase) (produceResult, error) {
	p := r.cfg.Plan
	acks := "acks1"
	if c.Acks == -1 {
		acks = "acksall"
	}
	topic := r.topicName(fmt.Sprintf("produce-%s-%s-p%d", sizeLabel(c.RecordSize), acks, c.Partitions))
	cctx, cancel := context.WithTimeout(ctx, p.ScaleLimit)
	err := r.createTopic(cctx, t, topic, c.Partitions)
	cancel()
	if err != nil {
		return produceResult{}, err
	}
	defer r.deleteTopic(ctx, t, topic)
	maxRecs := min(p.CaseMaxRecs, p.CaseMaxBytes/int64(c.RecordSize))
	before, ok := t.diskWritten()
	res, err := r.produceLoad(ctx, t, r.producerOpts(topic, c.Acks, p.Linger), c.RecordSize, maxRecs, p.CaseDuration)
	if after, ok2 := t.diskWritten(); ok && ok2 {
		res.DiskBytes, res.diskOK = after-before, true
	}
	return res, err
}

// produceLoad drives Producers clients flat out until maxRecs records were
// handed over or dur passed, then waits for every acknowledgement. Latency
// is per record, from the Produce call to its acknowledgement.
func (r *runner) produceLoad(ctx context.Context, t *target, opts []kgo.Opt, size int, maxRecs int64, dur time.Duration) (produceResult, error) {
	clients := make([]*kgo.Client, 0, r.cfg.Plan.Producers)
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()
	for i := 0; i < r.cfg.Plan.Producers; i++ {
		cl, err := r.newClient(t, opts...)
		if err != nil {
			return produceResult{}, err
		}
		clients = append(clients, cl)
	}
	if err := warmUp(ctx, clients, r.payloads.get(size)); err != nil {
		return produceResult{}, err
	}
	var (
		lat                   Latencies
		issued, acked, failed atomic.Int64
		lastAck               atomic.Int64 // ns since start
		firstErr              error
		errOnce               sync.Once
		wg                    sync.WaitGroup
	)
	lctx, cancel := context.WithTimeout(ctx, dur+30*time.Second)
	defer cancel()
	start := time.Now()
	deadline := start.Add(dur)
	for _, cl := range clients {
		wg.Add(1)
		go func() { // owned here: joined by wg.Wait below
			defer wg.Done()
			for lctx.Err() == nil && time.Now().Before(deadline) && issued.Add(1) <= maxRecs {
				sent := time.Now()
				cl.Produce(lctx, &kgo.Record{Value: r.payloads.get(size)}, func(_ *kgo.Record, err error) {
					if err != nil {
						failed.Add(1)
						errOnce.Do(func() { firstErr = err })
						return
					}
					now := time.Now()
					lat.Add(now.Sub(sent))
					acked.Add(1)
					storeMax(&lastAck, int64(now.Sub(start)))
				})
			}
			if err := cl.Flush(lctx); err != nil {
				errOnce.Do(func() { firstErr = fmt.Errorf("flush: %w", err) })
			}
		}()
	}
	wg.Wait()
	res := produceResult{Records: acked.Load(), Bytes: acked.Load() * int64(size),
		Elapsed: time.Duration(lastAck.Load()), Latency: lat.Summary()}
	if n := failed.Load(); n > 0 || firstErr != nil {
		return res, fmt.Errorf("%d of %d records failed: %w", n, n+res.Records, firstErr)
	}
	if res.Records == 0 {
		return res, fmt.Errorf("no record acknowledged within %v", dur)
	}
	return res, nil
}

// warmUp produces one record synchronously from every client, so
// connections and metadata exist before the clock starts.
func warmUp(ctx context.Context, clients []*kgo.Client, value []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for i, cl := range clients {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
			return fmt.Errorf("warm-up produce from client %d: %w", i, err)
		}
	}
	return nil
}

// storeMax raises v to n unless it already holds more.
func storeMax(v *atomic.Int64, n int64) {
	for {
		cur := v.Load()
		if cur >= n || v.CompareAndSwap(cur, n) {
			return
		}
	}
}
