package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// FailoverStats are the kill -9 measurements on one target.
type FailoverStats struct {
	Target  string    `json:"target"`
	Kills   []float64 `json:"kills_s"` // kill to next acknowledged acks=-1 produce, per kill
	Killed  []int32   `json:"killed"`  // broker id killed each time
	P50S    float64   `json:"p50_s"`
	MaxS    float64   `json:"max_s"`
	Failure string    `json:"failure,omitempty"`
}

// failover kills the leader of a one-partition, fully replicated topic
// with SIGKILL, times the next acknowledged acks=-1 produce, restarts the
// node and waits for the full ISR before the next kill.
func (r *runner) failover(ctx context.Context, t *target) (FailoverStats, error) {
	p := r.cfg.Plan
	st := FailoverStats{Target: t.Name}
	topic := r.topicName("failover")
	cctx, cancel := context.WithTimeout(ctx, p.ScaleLimit)
	err := r.createTopic(cctx, t, topic, 1)
	cancel()
	if err != nil {
		return st, err
	}
	defer r.deleteTopic(ctx, t, topic)
	// Short metadata age and retry backoff: what is timed is the server
	// electing and serving a new leader, not the client's patience.
	cl, err := r.newClient(t, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.AllowIdempotentProduceCancellation(),
		kgo.MetadataMinAge(50*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		return st, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for i := 0; i < p.FailoverKills; i++ {
		d, killed, err := r.killOnce(ctx, t, cl, adm, topic)
		if err != nil {
			return st, fmt.Errorf("kill %d: %w", i+1, err)
		}
		st.Kills, st.Killed = append(st.Kills, d.Seconds()), append(st.Killed, killed)
		r.log.Info("failover", "kill", i+1, "broker", killed, "seconds", d.Seconds())
	}
	sorted := slices.Clone(st.Kills)
	slices.Sort(sorted)
	st.P50S, st.MaxS = sorted[(len(sorted)-1)/2], sorted[len(sorted)-1]
	return st, nil
}

func (r *runner) killOnce(ctx context.Context, t *target, cl *kgo.Client, adm *kadm.Client, topic string) (time.Duration, int32, error) {
	p := r.cfg.Plan
	hctx, cancel := context.WithTimeout(ctx, p.FailoverLimit)
	leader, err := waitHealthy(hctx, adm, topic, int(t.RF))
	if err == nil {
		err = cl.ProduceSync(hctx, &kgo.Record{Value: r.payloads.get(1024)}).FirstErr()
	}
	cancel()
	if err != nil {
		return 0, 0, fmt.Errorf("before the kill: %w", err)
	}
	var victim *node
	for _, n := range t.nodes {
		if n.id == leader {
			victim = n
		}
	}
	if victim == nil {
		return 0, 0, fmt.Errorf("leader %d is none of our nodes", leader)
	}
	start := time.Now()
	victim.kill()
	pctx, cancel := context.WithTimeout(ctx, p.FailoverLimit)
	err = cl.ProduceSync(pctx, &kgo.Record{Value: r.payloads.get(1024)}).FirstErr()
	cancel()
	took := time.Since(start)
	if err != nil {
		return 0, leader, fmt.Errorf("no acknowledged produce within %v of killing broker %d: %w", p.FailoverLimit, leader, err)
	}
	if err := victim.start(); err != nil {
		return 0, leader, err
	}
	rctx, cancel := context.WithTimeoutCause(ctx, p.ClusterReady, fmt.Errorf("not ready within %v", p.ClusterReady))
	defer cancel()
	if err := victim.waitReady(rctx); err != nil {
		return 0, leader, fmt.Errorf("restart after kill: %w", err)
	}
	return took, leader, nil
}

// waitHealthy waits until partition 0 of topic has a leader and an ISR of
// rf replicas, and returns the leader.
func waitHealthy(ctx context.Context, adm *kadm.Client, topic string, rf int) (int32, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := "no metadata yet"
	for {
		tds, err := adm.ListTopics(ctx, topic)
		if err == nil {
			if pd, ok := tds[topic].Partitions[0]; ok && pd.Err == nil && pd.Leader >= 0 && len(pd.ISR) >= rf {
				return pd.Leader, nil
			} else if ok {
				last = fmt.Sprintf("leader %d, isr %v, err %v", pd.Leader, pd.ISR, pd.Err)
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("partition never healthy (%s): %w", last, context.Cause(ctx))
		case <-tick.C:
		}
	}
}
