package main

import (
	"fmt"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"

	adminv1 "github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1"
)

// clusterCommand is `chronikctl cluster status`.
func clusterCommand(s *session) *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "inspect the cluster",
		Subcommands: []*cli.Command{{
			Name:  "status",
			Usage: "show nodes, __meta and partition health; exit 0 healthy, 1 degraded, 2 unreachable",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "partitions", Usage: "list every partition with leader, replicas and ISR"},
				&cli.StringSliceFlag{Name: "topic", Usage: "with --partitions, only these topics (repeatable)"},
			},
			Action: func(c *cli.Context) error { return s.clusterStatus(c) },
		}},
	}
}

func (s *session) clusterStatus(c *cli.Context) error {
	ctx, cancel := s.callCtx(c.Context, 0)
	defer cancel()
	resp, err := s.admin().GetClusterStatus(ctx, connect.NewRequest(&adminv1.GetClusterStatusRequest{
		Topics: c.StringSlice("topic"),
	}))
	if err != nil {
		return fmt.Errorf("get cluster status: %w", err)
	}
	st := resp.Msg
	if s.json {
		err = writeClusterStatusJSON(s.stdout, st)
	} else {
		err = writeClusterStatus(s.stdout, st, c.Bool("partitions"))
	}
	if err != nil {
		return err
	}
	if len(clusterProblems(st)) > 0 {
		// The report itself says why; the exit code is for scripts.
		return &exitError{code: exitFailure}
	}
	return nil
}
