package main

import (
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1"
)

// electionOverhead is how much longer than the requested timeout the client
// waits, so that the server's own timeout answer arrives before ours fires.
const electionOverhead = 2 * time.Second

// transferLeaderCommand is `chronikctl transfer-leader`.
func transferLeaderCommand(s *session) *cli.Command {
	return &cli.Command{
		Name:  "transfer-leader",
		Usage: "move the leadership of __meta, a partition, or everything a node leads",
		UsageText: "chronikctl transfer-leader --meta [--to N]\n" +
			"chronikctl transfer-leader --topic T --partition P [--to N]\n" +
			"chronikctl transfer-leader --node N [--to M]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "meta", Usage: "move the __meta leadership"},
			&cli.StringFlag{Name: "topic", Usage: "topic of the partition to move"},
			&cli.IntFlag{Name: "partition", Value: -1, Usage: "partition to move (with --topic)"},
			&cli.IntFlag{Name: "node", Usage: "move every leadership this node holds"},
			&cli.IntFlag{Name: "to", Usage: "node to hand the leadership to (default: the best candidate)"},
		},
		Action: func(c *cli.Context) error { return s.transferLeader(c) },
	}
}

func transferTarget(c *cli.Context) (*adminv1.TransferLeaderRequest, error) {
	req := &adminv1.TransferLeaderRequest{ToNodeId: int32(c.Int("to"))}
	n := 0
	if c.Bool("meta") {
		n++
		req.Target = &adminv1.TransferLeaderRequest_Meta{Meta: true}
	}
	if c.IsSet("topic") || c.IsSet("partition") {
		n++
		if c.String("topic") == "" || c.Int("partition") < 0 {
			return nil, errors.New("--topic and --partition go together")
		}
		req.Target = &adminv1.TransferLeaderRequest_Partition{Partition: &adminv1.PartitionRef{
			Topic: c.String("topic"), Partition: int32(c.Int("partition")),
		}}
	}
	if c.IsSet("node") {
		n++
		if c.Int("node") <= 0 {
			return nil, errors.New("--node must be a node id")
		}
		req.Target = &adminv1.TransferLeaderRequest_NodeId{NodeId: int32(c.Int("node"))}
	}
	if n != 1 {
		return nil, errors.New("give exactly one of --meta, --topic with --partition, or --node")
	}
	if req.ToNodeId < 0 {
		return nil, errors.New("--to must be a node id")
	}
	return req, nil
}

func (s *session) transferLeader(c *cli.Context) error {
	req, err := transferTarget(c)
	if err != nil {
		return err
	}
	req.Timeout = durationpb.New(s.timeout)
	ctx, cancel := s.callCtx(c.Context, electionOverhead)
	defer cancel()
	resp, err := s.admin().TransferLeader(ctx, connect.NewRequest(req))
	if err != nil {
		return fmt.Errorf("transfer leader: %w", err)
	}
	if s.json {
		return writeProtoJSON(s.stdout, resp.Msg)
	}
	return writeLeadershipChanges(s.stdout, resp.Msg.GetChanges())
}
