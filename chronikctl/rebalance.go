package main

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1"
)

// rebalanceCommand is `chronikctl rebalance [--dry-run] [--wait]` with its
// `status` and `cancel` subcommands.
func rebalanceCommand(s *session) *cli.Command {
	idFlag := func() cli.Flag {
		return &cli.StringFlag{Name: "id", Usage: "rebalance id (default: the current or last one)"}
	}
	return &cli.Command{
		Name:  "rebalance",
		Usage: "even out replicas and leaders over the live brokers",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "dry-run", Usage: "print the plan without starting it"},
			&cli.BoolFlag{Name: "wait", Usage: "follow the rebalance until it ends"},
			intervalFlag(),
		},
		Action: func(c *cli.Context) error { return s.startRebalance(c) },
		Subcommands: []*cli.Command{
			{
				Name:   "status",
				Usage:  "show the progress of a rebalance",
				Flags:  []cli.Flag{idFlag()},
				Action: func(c *cli.Context) error { return s.rebalanceStatus(c) },
			},
			{
				Name:   "cancel",
				Usage:  "stop a running rebalance after its current step",
				Flags:  []cli.Flag{idFlag()},
				Action: func(c *cli.Context) error { return s.cancelRebalance(c) },
			},
		},
	}
}

func intervalFlag() cli.Flag {
	return &cli.DurationFlag{Name: "interval", Value: time.Second, Usage: "with --wait, how often to poll"}
}

func (s *session) startRebalance(c *cli.Context) error {
	ctx, cancel := s.callCtx(c.Context, 0)
	resp, err := s.admin().StartRebalance(ctx, connect.NewRequest(&adminv1.StartRebalanceRequest{
		DryRun: c.Bool("dry-run"),
	}))
	cancel()
	if err != nil {
		return fmt.Errorf("start rebalance: %w", err)
	}
	return s.followPlan(c, resp.Msg.GetRebalanceId(), resp.Msg.GetMoves(), resp.Msg)
}

// followPlan prints a plan (or its JSON form msg) and, with --wait and a
// started rebalance, follows it to its end.
func (s *session) followPlan(c *cli.Context, id string, moves []*adminv1.RebalanceMove, msg proto.Message) error {
	wait := c.Bool("wait") && id != ""
	if s.json && !wait {
		return writeProtoJSON(s.stdout, msg)
	}
	if !s.json {
		if err := writePlan(s.stdout, id, moves); err != nil {
			return err
		}
	}
	if !wait {
		return nil
	}
	if !s.json {
		fmt.Fprintln(s.stdout)
	}
	return s.waitRebalance(c.Context, id, c.Duration("interval"))
}

// waitRebalance polls a rebalance until it is no longer running, printing a
// line whenever its progress changes, then its final status. A rebalance
// that ends cancelled or failed is an error.
func (s *session) waitRebalance(ctx context.Context, id string, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Second
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	last := ""
	for {
		st, err := s.getRebalance(ctx, id)
		if err != nil {
			return err
		}
		if line := progressLine(st); line != last && !s.json {
			fmt.Fprintln(s.stdout, line)
			last = line
		}
		if st.GetState() != adminv1.RebalanceState_REBALANCE_STATE_RUNNING {
			return s.finishRebalance(st)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for rebalance %s: %w", id, ctx.Err())
		case <-ticker.C:
		}
	}
}

func (s *session) finishRebalance(st *adminv1.RebalanceStatus) error {
	if s.json {
		if err := writeProtoJSON(s.stdout, st); err != nil {
			return err
		}
	}
	switch st.GetState() {
	case adminv1.RebalanceState_REBALANCE_STATE_DONE:
		return nil
	case adminv1.RebalanceState_REBALANCE_STATE_FAILED:
		return &exitError{code: exitFailure, msg: fmt.Sprintf("rebalance %s failed: %s", st.GetRebalanceId(), st.GetError())}
	default:
		return &exitError{code: exitFailure, msg: fmt.Sprintf("rebalance %s ended %s after %d/%d steps",
			st.GetRebalanceId(), rebalanceStateName(st.GetState()), st.GetStepsDone(), st.GetStepsTotal())}
	}
}

func (s *session) getRebalance(ctx context.Context, id string) (*adminv1.RebalanceStatus, error) {
	ctx, cancel := s.callCtx(ctx, 0)
	defer cancel()
	resp, err := s.admin().GetRebalanceStatus(ctx, connect.NewRequest(&adminv1.GetRebalanceStatusRequest{
		RebalanceId: id,
	}))
	if err != nil {
		return nil, fmt.Errorf("get rebalance status: %w", err)
	}
	return resp.Msg.GetStatus(), nil
}

func (s *session) rebalanceStatus(c *cli.Context) error {
	st, err := s.getRebalance(c.Context, c.String("id"))
	if err != nil {
		return err
	}
	if s.json {
		return writeProtoJSON(s.stdout, st)
	}
	return writeRebalanceStatus(s.stdout, st)
}

func (s *session) cancelRebalance(c *cli.Context) error {
	ctx, cancel := s.callCtx(c.Context, 0)
	defer cancel()
	resp, err := s.admin().CancelRebalance(ctx, connect.NewRequest(&adminv1.CancelRebalanceRequest{
		RebalanceId: c.String("id"),
	}))
	if err != nil {
		return fmt.Errorf("cancel rebalance: %w", err)
	}
	if s.json {
		return writeProtoJSON(s.stdout, resp.Msg.GetStatus())
	}
	return writeRebalanceStatus(s.stdout, resp.Msg.GetStatus())
}
