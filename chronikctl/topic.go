package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/urfave/cli/v2"
)

// topicCommand is `chronikctl topic create|list|describe|delete|alter-config`,
// spoken over the Kafka protocol like kafka-topics.
func topicCommand(s *session) *cli.Command {
	return &cli.Command{
		Name:  "topic",
		Usage: "manage topics over the Kafka protocol",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create a topic",
				ArgsUsage: "TOPIC",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "partitions", Aliases: []string{"p"}, Value: 1, Usage: "number of partitions"},
					&cli.IntFlag{Name: "replication-factor", Aliases: []string{"r"}, Value: -1,
						Usage: "replicas per partition (default: the cluster's replication_factor)"},
					&cli.StringSliceFlag{Name: "config", Aliases: []string{"c"}, Usage: "topic config key=value (repeatable)"},
				},
				Action: func(c *cli.Context) error { return s.createTopic(c) },
			},
			{
				Name:  "list",
				Usage: "list topics with their partition count and replication factor",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "internal", Usage: "include internal topics"},
				},
				Action: func(c *cli.Context) error { return s.listTopics(c) },
			},
			{
				Name:      "describe",
				Usage:     "show each partition's leader, replicas and ISR (all topics without arguments)",
				ArgsUsage: "[TOPIC...]",
				Action:    func(c *cli.Context) error { return s.describeTopics(c) },
			},
			{
				Name:      "delete",
				Usage:     "delete topics",
				ArgsUsage: "TOPIC...",
				Action:    func(c *cli.Context) error { return s.deleteTopics(c) },
			},
			{
				Name:      "alter-config",
				Usage:     "set or delete topic configs",
				ArgsUsage: "TOPIC",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "set", Usage: "config key=value to set (repeatable)"},
					&cli.StringSliceFlag{Name: "delete", Usage: "config key to reset to its default (repeatable)"},
				},
				Action: func(c *cli.Context) error { return s.alterTopicConfig(c) },
			},
		},
	}
}

// kafkaErr joins a Kafka error with the broker's extra message, if any.
func kafkaErr(err error, msg string) error {
	if msg == "" {
		return err
	}
	return fmt.Errorf("%w (%s)", err, msg)
}

func parseConfigs(kvs []string) (map[string]*string, error) {
	out := make(map[string]*string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("config %q is not key=value", kv)
		}
		out[k] = kadm.StringPtr(v)
	}
	return out, nil
}

func (s *session) createTopic(c *cli.Context) error {
	if len(s.args) != 1 {
		return errors.New("expected one TOPIC argument")
	}
	topic := s.args[0]
	configs, err := parseConfigs(c.StringSlice("config"))
	if err != nil {
		return err
	}
	ctx, cancel := s.callCtx(c.Context, 0)
	defer cancel()
	adm, err := s.kafka()
	if err != nil {
		return err
	}
	defer adm.Close()
	resp, err := adm.CreateTopic(ctx, int32(c.Int("partitions")), int16(c.Int("replication-factor")), configs, topic)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, kafkaErr(err, resp.ErrMessage))
	}
	if s.json {
		return writeJSON(s.stdout, topicSummary{Topic: topic, Partitions: int(resp.NumPartitions),
			ReplicationFactor: int(resp.ReplicationFactor)})
	}
	_, err = fmt.Fprintf(s.stdout, "Created topic %s.\n", topic)
	return err
}

// loadTopics describes the named topics, or every topic when names is empty.
func (s *session) loadTopics(c *cli.Context, names []string, internal bool) ([]topicInfo, error) {
	ctx, cancel := s.callCtx(c.Context, 0)
	defer cancel()
	adm, err := s.kafka()
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	var details kadm.TopicDetails
	if len(names) == 0 && internal {
		details, err = adm.ListTopicsWithInternal(ctx)
	} else if len(names) == 0 {
		details, err = adm.ListTopics(ctx)
	} else {
		var md kadm.Metadata
		md, err = adm.Metadata(ctx, names...)
		details = md.Topics
	}
	if err != nil {
		return nil, fmt.Errorf("read metadata: %w", err)
	}
	order := names
	if len(order) == 0 {
		order = details.Names()
	}
	out := make([]topicInfo, 0, len(order))
	for _, name := range order {
		d, ok := details[name]
		if !ok {
			return nil, fmt.Errorf("topic %s: not in the metadata response", name)
		}
		if d.Err != nil {
			return nil, fmt.Errorf("topic %s: %w", name, d.Err)
		}
		out = append(out, toTopicInfo(d))
	}
	return out, nil
}

func toTopicInfo(d kadm.TopicDetail) topicInfo {
	t := topicInfo{Topic: d.Topic, Internal: d.IsInternal}
	for _, p := range d.Partitions.Sorted() {
		pi := partitionInfo{Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
			Replicas: slices.Clone(p.Replicas), ISR: slices.Clone(p.ISR)}
		if pi.Replicas == nil {
			pi.Replicas = []int32{}
		}
		if pi.ISR == nil {
			pi.ISR = []int32{}
		}
		if p.Err != nil {
			pi.Error = p.Err.Error()
		}
		t.Partitions = append(t.Partitions, pi)
	}
	return t
}

func (s *session) listTopics(c *cli.Context) error {
	topics, err := s.loadTopics(c, nil, c.Bool("internal"))
	if err != nil {
		return err
	}
	sum := summarizeTopics(topics)
	if s.json {
		return writeJSON(s.stdout, sum)
	}
	return writeTopicList(s.stdout, sum)
}

func (s *session) describeTopics(c *cli.Context) error {
	topics, err := s.loadTopics(c, s.args, false)
	if err != nil {
		return err
	}
	if s.json {
		return writeJSON(s.stdout, topics)
	}
	return writeTopicDescribe(s.stdout, topics)
}

func (s *session) deleteTopics(c *cli.Context) error {
	if len(s.args) == 0 {
		return errors.New("expected at least one TOPIC argument")
	}
	ctx, cancel := s.callCtx(c.Context, 0)
	defer cancel()
	adm, err := s.kafka()
	if err != nil {
		return err
	}
	defer adm.Close()
	resps, err := adm.DeleteTopics(ctx, s.args...)
	if err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	var errs []error
	var deleted []string
	for _, name := range s.args {
		r, ok := resps[name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("delete topic %s: not in the response", name))
		case r.Err != nil:
			errs = append(errs, fmt.Errorf("delete topic %s: %w", name, kafkaErr(r.Err, r.ErrMessage)))
		default:
			deleted = append(deleted, name)
		}
	}
	if s.json {
		if deleted == nil {
			deleted = []string{}
		}
		if err := writeJSON(s.stdout, map[string][]string{"deleted": deleted}); err != nil {
			return err
		}
	} else {
		for _, name := range deleted {
			fmt.Fprintf(s.stdout, "Deleted topic %s.\n", name)
		}
	}
	return errors.Join(errs...)
}

func (s *session) alterTopicConfig(c *cli.Context) error {
	if len(s.args) != 1 {
		return errors.New("expected one TOPIC argument")
	}
	topic := s.args[0]
	var alters []kadm.AlterConfig
	for _, kv := range c.StringSlice("set") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("--set %q is not key=value", kv)
		}
		alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: kadm.StringPtr(v)})
	}
	for _, k := range c.StringSlice("delete") {
		alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
	}
	if len(alters) == 0 {
		return errors.New("nothing to change: give --set key=value or --delete key")
	}
	ctx, cancel := s.callCtx(c.Context, 0)
	defer cancel()
	adm, err := s.kafka()
	if err != nil {
		return err
	}
	defer adm.Close()
	resps, err := adm.AlterTopicConfigs(ctx, alters, topic)
	if err != nil {
		return fmt.Errorf("alter config of %s: %w", topic, err)
	}
	for _, r := range resps {
		if r.Err != nil {
			return fmt.Errorf("alter config of %s: %w", topic, kafkaErr(r.Err, r.ErrMessage))
		}
	}
	if s.json {
		return writeJSON(s.stdout, map[string]string{"altered": topic})
	}
	_, err = fmt.Fprintf(s.stdout, "Altered config of topic %s.\n", topic)
	return err
}
