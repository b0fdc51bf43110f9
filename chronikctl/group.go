package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/urfave/cli/v2"
)

// groupCommand is `chronikctl group list|describe|reset-offsets|delete`,
// spoken over the Kafka protocol like kafka-consumer-groups.
func groupCommand(s *session) *cli.Command {
	return &cli.Command{
		Name:  "group",
		Usage: "inspect and manage consumer groups over the Kafka protocol",
		Subcommands: []*cli.Command{
			{
				Name:   "list",
				Usage:  "list consumer groups",
				Action: func(c *cli.Context) error { return s.listGroups(c) },
			},
			{
				Name:      "describe",
				Usage:     "show members, assignments, committed offsets, log end offsets and lag",
				ArgsUsage: "GROUP...",
				Action:    func(c *cli.Context) error { return s.describeGroups(c) },
			},
			{
				Name:      "reset-offsets",
				Usage:     "move an empty group's committed offsets",
				ArgsUsage: "GROUP",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "topic", Usage: "topic to reset, every partition (default: the topics the group committed to)"},
					&cli.BoolFlag{Name: "to-earliest", Usage: "to the log start offset"},
					&cli.BoolFlag{Name: "to-latest", Usage: "to the log end offset"},
					&cli.Int64Flag{Name: "to-offset", Usage: "to this offset, clamped to the log's range"},
					&cli.StringFlag{Name: "to-datetime", Usage: "to the first offset at or after this time (RFC 3339, or YYYY-MM-DDTHH:MM:SS[.sss] in local time)"},
					&cli.BoolFlag{Name: "dry-run", Usage: "print the new offsets without committing them"},
				},
				Action: func(c *cli.Context) error { return s.resetOffsets(c) },
			},
			{
				Name:      "delete",
				Usage:     "delete empty consumer groups and their committed offsets",
				ArgsUsage: "GROUP...",
				Action:    func(c *cli.Context) error { return s.deleteGroups(c) },
			},
		},
	}
}

func (s *session) listGroups(c *cli.Context) error {
	ctx, cancel := s.callCtx(c.Context, 0)
	defer cancel()
	adm, err := s.kafka()
	if err != nil {
		return err
	}
	defer adm.Close()
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	out := []groupSummary{}
	for _, g := range listed.Sorted() {
		out = append(out, groupSummary{Group: g.Group, State: g.State, ProtocolType: g.ProtocolType,
			Coordinator: g.Coordinator})
	}
	if s.json {
		return writeJSON(s.stdout, out)
	}
	return writeGroupList(s.stdout, out)
}

func (s *session) describeGroups(c *cli.Context) error {
	if len(s.args) == 0 {
		return errors.New("expected at least one GROUP argument")
	}
	ctx, cancel := s.callCtx(c.Context, 0)
	defer cancel()
	adm, err := s.kafka()
	if err != nil {
		return err
	}
	defer adm.Close()
	lags, err := adm.Lag(ctx, s.args...)
	if err != nil {
		return fmt.Errorf("describe groups: %w", err)
	}
	var groups []groupInfo
	for _, name := range s.args {
		l, ok := lags[name]
		if !ok {
			return fmt.Errorf("group %s: not in the response", name)
		}
		if err := l.Error(); err != nil {
			return fmt.Errorf("group %s: %w", name, err)
		}
		groups = append(groups, toGroupInfo(l))
	}
	if s.json {
		return writeJSON(s.stdout, groups)
	}
	for i, g := range groups {
		if i > 0 {
			fmt.Fprintln(s.stdout)
		}
		if err := writeGroupDescribe(s.stdout, g); err != nil {
			return err
		}
	}
	return nil
}

func toGroupInfo(l kadm.DescribedGroupLag) groupInfo {
	g := groupInfo{Group: l.Group, State: l.State, ProtocolType: l.ProtocolType, Protocol: l.Protocol,
		Coordinator: l.Coordinator.NodeID, Members: []memberInfo{}, Offsets: []groupOffset{}}
	for _, m := range l.Members {
		mi := memberInfo{MemberID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost, Assigned: []topicPartitions{}}
		if m.InstanceID != nil {
			mi.InstanceID = *m.InstanceID
		}
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				ps := slices.Clone(t.Partitions)
				slices.Sort(ps)
				mi.Assigned = append(mi.Assigned, topicPartitions{Topic: t.Topic, Partitions: ps})
			}
			slices.SortFunc(mi.Assigned, func(a, b topicPartitions) int {
				switch {
				case a.Topic < b.Topic:
					return -1
				case a.Topic > b.Topic:
					return 1
				}
				return 0
			})
		}
		g.Members = append(g.Members, mi)
	}
	for _, ml := range l.Lag.Sorted() {
		o := groupOffset{Topic: ml.Topic, Partition: ml.Partition, Committed: ml.Commit.At,
			LogEnd: ml.End.Offset, Lag: ml.Lag}
		if ml.Member != nil {
			o.MemberID = ml.Member.MemberID
		}
		if ml.Err != nil {
			o.Error = ml.Err.Error()
		}
		g.Offsets = append(g.Offsets, o)
	}
	return g
}

// resetTarget is where `reset-offsets` moves each partition.
type resetTarget struct {
	earliest, latest bool
	offset           int64 // with hasOffset
	hasOffset        bool
	at               time.Time // when non-zero
}

// Layouts accepted by --to-datetime besides RFC 3339; like Kafka's tool,
// a time without a zone is local.
var datetimeLayouts = []string{"2006-01-02T15:04:05.000", "2006-01-02T15:04:05"}

func parseDatetime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	for _, layout := range datetimeLayouts {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--to-datetime %q is neither RFC 3339 nor YYYY-MM-DDTHH:MM:SS[.sss]", v)
}

func parseResetTarget(c *cli.Context) (resetTarget, error) {
	var t resetTarget
	n := 0
	if c.Bool("to-earliest") {
		n++
		t.earliest = true
	}
	if c.Bool("to-latest") {
		n++
		t.latest = true
	}
	if c.IsSet("to-offset") {
		n++
		t.hasOffset, t.offset = true, c.Int64("to-offset")
		if t.offset < 0 {
			return t, errors.New("--to-offset must not be negative")
		}
	}
	if c.IsSet("to-datetime") {
		n++
		at, err := parseDatetime(c.String("to-datetime"))
		if err != nil {
			return t, err
		}
		t.at = at
	}
	if n != 1 {
		return t, errors.New("give exactly one of --to-earliest, --to-latest, --to-offset or --to-datetime")
	}
	return t, nil
}

func (s *session) resetOffsets(c *cli.Context) error {
	if len(s.args) != 1 {
		return errors.New("expected one GROUP argument")
	}
	group := s.args[0]
	target, err := parseResetTarget(c)
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
	if err := requireEmptyGroup(ctx, adm, group); err != nil {
		return err
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return fmt.Errorf("fetch offsets of %s: %w", group, err)
	}
	topics := c.StringSlice("topic")
	if len(topics) == 0 {
		topics = committed.Offsets().TopicsSet().Topics()
		if len(topics) == 0 {
			return fmt.Errorf("group %s has no committed offsets: name the topics with --topic", group)
		}
	}
	resets, err := planResets(ctx, adm, topics, committed, target)
	if err != nil {
		return err
	}
	if !c.Bool("dry-run") {
		var offs kadm.Offsets
		for _, r := range resets {
			offs.AddOffset(r.Topic, r.Partition, r.New, -1)
		}
		resps, err := adm.CommitOffsets(ctx, group, offs)
		if err == nil {
			err = resps.Error()
		}
		if err != nil {
			return fmt.Errorf("commit offsets of %s: %w", group, err)
		}
	}
	if s.json {
		return writeJSON(s.stdout, resets)
	}
	return writeOffsetResets(s.stdout, group, resets, c.Bool("dry-run"))
}

// requireEmptyGroup refuses to move the offsets of a group with live
// members: they would overwrite the reset with their next commit.
func requireEmptyGroup(ctx context.Context, adm *kadm.Client, group string) error {
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return fmt.Errorf("describe group %s: %w", group, err)
	}
	d, ok := described[group]
	if !ok {
		return fmt.Errorf("describe group %s: not in the response", group)
	}
	if d.Err != nil {
		return fmt.Errorf("describe group %s: %w", group, kafkaErr(d.Err, d.ErrMessage))
	}
	if len(d.Members) > 0 || (d.State != "Empty" && d.State != "Dead") {
		return fmt.Errorf("group %s is not empty (state %s, %s): stop its consumers first",
			group, d.State, plural(len(d.Members), "member"))
	}
	return nil
}

// planResets computes the new offset of every partition of topics.
func planResets(ctx context.Context, adm *kadm.Client, topics []string, committed kadm.OffsetResponses, t resetTarget) ([]offsetReset, error) {
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list start offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	var byTime kadm.ListedOffsets
	if !t.at.IsZero() {
		byTime, err = adm.ListOffsetsAfterMilli(ctx, t.at.UnixMilli(), topics...)
		if err == nil {
			err = byTime.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("list offsets after %s: %w", t.at.Format(time.RFC3339), err)
		}
	}
	var out []offsetReset
	for _, topic := range topics {
		if _, ok := ends[topic]; !ok {
			return nil, fmt.Errorf("topic %s: not found", topic)
		}
	}
	for _, end := range sortedListed(ends) {
		start, _ := starts.Lookup(end.Topic, end.Partition)
		r := offsetReset{Topic: end.Topic, Partition: end.Partition, Old: -1}
		if c, ok := committed.Lookup(end.Topic, end.Partition); ok && c.Err == nil {
			r.Old = c.At
		}
		switch {
		case t.earliest:
			r.New = start.Offset
		case t.latest:
			r.New = end.Offset
		case t.hasOffset:
			r.New = min(max(t.offset, start.Offset), end.Offset)
		default:
			r.New = end.Offset
			if bt, ok := byTime.Lookup(end.Topic, end.Partition); ok && bt.Offset >= 0 {
				r.New = bt.Offset
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func sortedListed(l kadm.ListedOffsets) []kadm.ListedOffset {
	var out []kadm.ListedOffset
	l.Each(func(o kadm.ListedOffset) { out = append(out, o) })
	slices.SortFunc(out, func(a, b kadm.ListedOffset) int {
		switch {
		case a.Topic < b.Topic:
			return -1
		case a.Topic > b.Topic:
			return 1
		}
		return int(a.Partition - b.Partition)
	})
	return out
}

func (s *session) deleteGroups(c *cli.Context) error {
	if len(s.args) == 0 {
		return errors.New("expected at least one GROUP argument")
	}
	ctx, cancel := s.callCtx(c.Context, 0)
	defer cancel()
	adm, err := s.kafka()
	if err != nil {
		return err
	}
	defer adm.Close()
	resps, err := adm.DeleteGroups(ctx, s.args...)
	if err != nil {
		return fmt.Errorf("delete groups: %w", err)
	}
	var errs []error
	deleted := []string{}
	for _, name := range s.args {
		r, ok := resps[name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("delete group %s: not in the response", name))
		case r.Err != nil:
			errs = append(errs, fmt.Errorf("delete group %s: %w", name, kafkaErr(r.Err, r.ErrMessage)))
		default:
			deleted = append(deleted, name)
		}
	}
	if s.json {
		if err := writeJSON(s.stdout, map[string][]string{"deleted": deleted}); err != nil {
			return err
		}
	} else {
		for _, name := range deleted {
			fmt.Fprintf(s.stdout, "Deleted group %s.\n", name)
		}
	}
	return errors.Join(errs...)
}
