package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1"
)

// nodeCommand is `chronikctl node list|drain|decommission|add`.
func nodeCommand(s *session) *cli.Command {
	return &cli.Command{
		Name:  "node",
		Usage: "list, add, drain and decommission nodes",
		Subcommands: []*cli.Command{
			{
				Name:   "list",
				Usage:  "list the nodes known to __meta",
				Action: func(c *cli.Context) error { return s.listNodes(c) },
			},
			{
				Name:      "drain",
				Usage:     "move every leadership away from a node (before restarting it)",
				ArgsUsage: "NODE_ID",
				Action:    func(c *cli.Context) error { return s.drainNode(c) },
			},
			{
				Name:      "decommission",
				Usage:     "move every replica away from a node, then remove it from the cluster",
				ArgsUsage: "NODE_ID",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "dry-run", Usage: "print the plan without starting it"},
					&cli.BoolFlag{Name: "wait", Usage: "follow the replica moves until they end"},
					intervalFlag(),
				},
				Action: func(c *cli.Context) error { return s.decommissionNode(c) },
			},
			{
				Name:  "add",
				Usage: "register a new peer, as its cluster.toml [[peers]] entry describes it",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "id", Required: true, Usage: "peer id (1-255)"},
					&cli.StringFlag{Name: "addr", Required: true, Usage: "advertised Kafka address, host:port"},
					&cli.IntFlag{Name: "raft-port", Required: true, Usage: "Raft port on the same host"},
					&cli.StringFlag{Name: "roles", Value: "controller,broker", Usage: "comma-separated roles"},
					&cli.StringFlag{Name: "rack", Usage: "rack of the node"},
				},
				Action: func(c *cli.Context) error { return s.addNode(c) },
			},
		},
	}
}

// nodeArg parses the single NODE_ID argument.
func (s *session) nodeArg() (int32, error) {
	if len(s.args) != 1 {
		return 0, errors.New("expected one NODE_ID argument")
	}
	id, err := strconv.ParseInt(s.args[0], 10, 32)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("bad node id %q", s.args[0])
	}
	return int32(id), nil
}

func parseRoles(s string) ([]adminv1.NodeRole, error) {
	var roles []adminv1.NodeRole
	for _, r := range strings.Split(s, ",") {
		switch strings.TrimSpace(r) {
		case "controller":
			roles = append(roles, adminv1.NodeRole_NODE_ROLE_CONTROLLER)
		case "broker":
			roles = append(roles, adminv1.NodeRole_NODE_ROLE_BROKER)
		case "":
		default:
			return nil, fmt.Errorf("unknown role %q (want controller or broker)", r)
		}
	}
	if len(roles) == 0 {
		return nil, errors.New("--roles needs controller, broker or both")
	}
	return roles, nil
}

func (s *session) listNodes(c *cli.Context) error {
	ctx, cancel := s.callCtx(c.Context, 0)
	defer cancel()
	resp, err := s.admin().ListNodes(ctx, connect.NewRequest(&adminv1.ListNodesRequest{}))
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	if s.json {
		return writeProtoJSON(s.stdout, resp.Msg)
	}
	return writeNodes(s.stdout, resp.Msg.GetNodes())
}

func (s *session) drainNode(c *cli.Context) error {
	id, err := s.nodeArg()
	if err != nil {
		return err
	}
	ctx, cancel := s.callCtx(c.Context, electionOverhead)
	defer cancel()
	resp, err := s.admin().DrainNode(ctx, connect.NewRequest(&adminv1.DrainNodeRequest{
		NodeId: id, Timeout: durationpb.New(s.timeout),
	}))
	if err != nil {
		return fmt.Errorf("drain node %d: %w", id, err)
	}
	if s.json {
		return writeProtoJSON(s.stdout, resp.Msg)
	}
	if err := writeLeadershipChanges(s.stdout, resp.Msg.GetChanges()); err != nil {
		return err
	}
	n := resp.Msg.GetNode()
	_, err = fmt.Fprintf(s.stdout, "\nNode %d is %s and leads %s.\n", id, stateName(n.GetState()),
		plural(int(n.GetLeaderCount()), "partition"))
	return err
}

func (s *session) decommissionNode(c *cli.Context) error {
	id, err := s.nodeArg()
	if err != nil {
		return err
	}
	ctx, cancel := s.callCtx(c.Context, 0)
	resp, err := s.admin().DecommissionNode(ctx, connect.NewRequest(&adminv1.DecommissionNodeRequest{
		NodeId: id, DryRun: c.Bool("dry-run"),
	}))
	cancel()
	if err != nil {
		return fmt.Errorf("decommission node %d: %w", id, err)
	}
	return s.followPlan(c, resp.Msg.GetRebalanceId(), resp.Msg.GetMoves(), resp.Msg)
}

func (s *session) addNode(c *cli.Context) error {
	roles, err := parseRoles(c.String("roles"))
	if err != nil {
		return err
	}
	id, port := c.Int("id"), c.Int("raft-port")
	if id < 1 || id > 255 {
		return fmt.Errorf("--id %d is outside 1-255", id)
	}
	if port < 1 || port > 65535 {
		return fmt.Errorf("--raft-port %d is not a port", port)
	}
	ctx, cancel := s.callCtx(c.Context, 0)
	defer cancel()
	resp, err := s.admin().AddNode(ctx, connect.NewRequest(&adminv1.AddNodeRequest{
		NodeId: int32(id), KafkaAddr: c.String("addr"), RaftPort: int32(port),
		Roles: roles, Rack: c.String("rack"),
	}))
	if err != nil {
		return fmt.Errorf("add node %d: %w", id, err)
	}
	if s.json {
		return writeProtoJSON(s.stdout, resp.Msg)
	}
	return writeNodes(s.stdout, []*adminv1.Node{resp.Msg.GetNode()})
}
