package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// FailoverStats are the kill -9 measurements on one target.
type FailoverStats struct {
	Target  string    `json:"target"`
	Group   string    `json:"group,omitempty"` // "__meta", or empty for a partition`
	Kills   []float64 `json:"kills_s"`         // kill to next acknowledged acks=-1 produce, per kill
	Killed  []int32   `json:"killed"`          // broker id killed each time
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
	cl, err := r.newClient(t, r.errorsOnly(t), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
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
	// The metadata names a new partition's first leader before its Raft
	// group has elected one; the nodes' own gauges say who leads now.
	lctx, cancel := context.WithTimeout(ctx, p.FailoverLimit)
	victim, err := raftLeader(lctx, t, fmt.Sprintf(`raft_is_leader{topic=%q,partition="0"}`, topic))
	cancel()
	if err != nil {
		return 0, 0, err
	}
	leader = victim.id
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

// failoverMeta kills the __meta leader with SIGKILL and times the next
// metadata change that commits (a topic created through any other node),
// then restarts the node and waits for it before the next kill.
func (r *runner) failoverMeta(ctx context.Context, t *target) (FailoverStats, error) {
	p := r.cfg.Plan
	st := FailoverStats{Target: t.Name}
	cl, err := r.newClient(t, r.errorsOnly(t), kgo.MetadataMinAge(50*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		return st, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var created []string
	defer func() {
		if len(created) > 0 {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			adm.DeleteTopics(dctx, created...)
			cancel()
		}
	}()
	for i := 0; i < p.FailoverKills; i++ {
		hctx, cancel := context.WithTimeout(ctx, p.FailoverLimit)
		victim, err := metaLeader(hctx, t)
		cancel()
		if err != nil {
			return st, fmt.Errorf("kill %d: %w", i+1, err)
		}
		topic := r.topicName(fmt.Sprintf("meta-failover-%d", i))
		start := time.Now()
		victim.kill()
		pctx, cancel := context.WithTimeout(ctx, p.FailoverLimit)
		err = createUntil(pctx, adm, topic)
		cancel()
		took := time.Since(start)
		if err != nil {
			return st, fmt.Errorf("kill %d: no metadata change within %v of killing %s: %w", i+1, p.FailoverLimit, victim.name, err)
		}
		created = append(created, topic)
		st.Kills, st.Killed = append(st.Kills, took.Seconds()), append(st.Killed, victim.id)
		r.log.Info("__meta failover", "kill", i+1, "node", victim.id, "seconds", took.Seconds())
		if err := victim.start(); err != nil {
			return st, err
		}
		rctx, cancel := context.WithTimeoutCause(ctx, p.ClusterReady, fmt.Errorf("not ready within %v", p.ClusterReady))
		err = victim.waitReady(rctx)
		cancel()
		if err != nil {
			return st, fmt.Errorf("restart after kill: %w", err)
		}
	}
	sorted := slices.Clone(st.Kills)
	slices.Sort(sorted)
	st.P50S, st.MaxS = sorted[(len(sorted)-1)/2], sorted[len(sorted)-1]
	return st, nil
}

// createUntil creates topic, retrying every 50 ms until it succeeds or ctx
// ends; a topic that turns out to exist counts (an earlier try committed).
func createUntil(ctx context.Context, adm *kadm.Client, topic string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := adm.CreateTopic(actx, 1, 1, nil, topic)
		cancel()
		if err == nil {
			err = resp.Err
		}
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", context.Cause(ctx), err)
		case <-tick.C:
		}
	}
}

// metaLeader finds the node whose metrics say it leads __meta.
func metaLeader(ctx context.Context, t *target) (*node, error) {
	return raftLeader(ctx, t, `raft_is_leader{topic="__meta",partition="0"}`)
}

// raftLeader finds the node whose raft_is_leader sample (the metric name
// with its labels) is 1.
func raftLeader(ctx context.Context, t *target, sample string) (*node, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, n := range t.nodes {
			if v, ok := n.metric(ctx, sample); ok && v == 1 {
				return n, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no node reports %s: %w", sample, context.Cause(ctx))
		case <-tick.C:
		}
	}
}
