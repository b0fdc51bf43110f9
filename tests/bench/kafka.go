package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kgoLogger hands franz-go's messages from level up (warnings unless set)
// to the driver's logger.
type kgoLogger struct {
	l     *slog.Logger
	level kgo.LogLevel
}

func (k kgoLogger) Level() kgo.LogLevel {
	if k.level == kgo.LogLevelNone {
		return kgo.LogLevelWarn
	}
	return k.level
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelWarn
	if level == kgo.LogLevelError {
		lv = slog.LevelError
	}
	k.l.Log(context.Background(), lv, "kgo: "+msg, keyvals...)
}

// newClient makes a kgo client for t with the driver's common options.
func (r *runner) newClient(t *target, opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{
		kgo.SeedBrokers(t.Brokers...),
		kgo.WithLogger(kgoLogger{l: r.log.With("target", t.Name)}),
		kgo.MetadataMinAge(250 * time.Millisecond),
		kgo.Dialer(loopbackDial),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", t.Name, err)
	}
	return cl, nil
}

// errorsOnly is a newClient option for clients that see brokers killed on
// purpose: franz-go warns of every refused dial to a dead broker, some
// twenty for each kill, which would bury the driver's own lines.
func (r *runner) errorsOnly(t *target) kgo.Opt {
	return kgo.WithLogger(kgoLogger{l: r.log.With("target", t.Name), level: kgo.LogLevelError})
}

// loopbackDial refuses any broker address outside 127.0.0.0/8, including
// ones a target advertises in its metadata: load never leaves the machine.
func loopbackDial(ctx context.Context, network, host string) (net.Conn, error) {
	if err := checkLoopback(host); err != nil {
		return nil, err
	}
	var d net.Dialer
	return d.DialContext(ctx, network, host)
}

// createTopic creates topic and waits until every partition has a leader.
func (r *runner) createTopic(ctx context.Context, t *target, topic string, parts int32) error {
	cl, err := r.newClient(t)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopics(ctx, parts, t.RF, nil, topic)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	if err := resp.Error(); err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return waitLeaders(ctx, adm, topic, parts)
}

// waitLeaders polls metadata until topic has parts partitions, each with a
// leader, or ctx ends.
func waitLeaders(ctx context.Context, adm *kadm.Client, topic string, parts int32) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		last = leadersReady(ctx, adm, topic, parts)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for leaders of %s: %w (last: %v)", topic, context.Cause(ctx), last)
		case <-tick.C:
		}
	}
}

func leadersReady(ctx context.Context, adm *kadm.Client, topic string, parts int32) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return err
	}
	td, ok := tds[topic]
	if !ok {
		return errors.New("topic missing from metadata")
	}
	if td.Err != nil {
		return td.Err
	}
	if int32(len(td.Partitions)) != parts {
		return fmt.Errorf("%d of %d partitions in metadata", len(td.Partitions), parts)
	}
	for _, p := range td.Partitions {
		if p.Err != nil {
			return fmt.Errorf("partition %d: %w", p.Partition, p.Err)
		}
		if p.Leader < 0 {
			return fmt.Errorf("partition %d: no leader", p.Partition)
		}
	}
	return nil
}

// deleteTopic removes topic so kfake frees its memory and servers their
// disk; failure is logged, not fatal: the next case uses a new name.
func (r *runner) deleteTopic(ctx context.Context, t *target, topic string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cl, err := r.newClient(t)
	if err != nil {
		r.log.Warn("delete topic", "target", t.Name, "topic", topic, "err", err)
		return
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).DeleteTopics(ctx, topic)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		r.log.Warn("delete topic", "target", t.Name, "topic", topic, "err", err)
	}
}

// payloads hands out slices of a random pool, so every record is
// incompressible without generating randomness on the hot path.
type payloads struct {
	pool []byte
	next atomic.Uint64
}

func newPayloads(size int) *payloads {
	p := &payloads{pool: make([]byte, 8<<20+size)}
	rand.Read(p.pool)
	return p
}

// get returns n random bytes; the caller must not modify them.
func (p *payloads) get(n int) []byte {
	span := uint64(len(p.pool) - n)
	off := (p.next.Add(7919) * 4099) % span
	return p.pool[off : off+uint64(n)]
}
