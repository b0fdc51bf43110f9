// Command chronikctl is the operator CLI of a Chronik Stream cluster.
//
// Cluster, leadership, rebalance and node commands speak the Connect admin API
// (chronik.admin.v1.AdminService) over plain HTTP on a node's Kafka port;
// topic and group commands speak the Kafka protocol to the same address.
// Every command prints a table for people or, with --json, JSON for scripts.
//
// Exit codes: 0 success (for `cluster status`: healthy), 1 failure (for
// `cluster status`: degraded), 2 the server could not be reached or did not
// answer within --timeout.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v2"

	"github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1/adminv1connect"
)

// Exit codes shared by every command.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUnreachable = 2
)

// defaultServer is the admin and Kafka address used without --server.
const defaultServer = "localhost:9092"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code. It never
// calls os.Exit, so tests drive the real command path through it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, args)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintf(stderr, "chronikctl: %s\n", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "chronikctl: %v\n", err)
	return exitFailure
}

// exitError carries an exit code and an optional message to run.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// session is the state of one invocation: where to write and the global
// options, resolved once a command starts.
type session struct {
	stdout, stderr io.Writer

	args      []string // positional arguments, flags taken out
	target    string   // the address(es) the command talks to, for errors
	server    string
	bootstrap []string
	timeout   time.Duration
	json      bool
}

// Global flag names; every leaf command accepts them too, so
// `chronikctl cluster status --json` and `chronikctl --json cluster status`
// mean the same.
const (
	flagServer    = "server"
	flagBootstrap = "bootstrap"
	flagTimeout   = "timeout"
	flagJSON      = "json"
)

func globalFlags(withEnv bool) []cli.Flag {
	env := func(name string) []string {
		if !withEnv {
			return nil
		}
		return []string{name}
	}
	return []cli.Flag{
		&cli.StringFlag{Name: flagServer, Value: defaultServer, EnvVars: env("CHRONIK_ADMIN_ADDR"),
			Usage: "node to talk to, host:port of its Kafka port (serves the admin API too)"},
		&cli.StringFlag{Name: flagBootstrap, EnvVars: env("CHRONIK_BOOTSTRAP_SERVERS"),
			Usage: "comma-separated Kafka bootstrap addresses for topic and group commands (default --server)"},
		&cli.DurationFlag{Name: flagTimeout, Value: 10 * time.Second,
			Usage: "how long to wait for the server to answer"},
		&cli.BoolFlag{Name: flagJSON, Usage: "print JSON instead of tables"},
	}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	s := &session{stdout: stdout, stderr: stderr}
	app := &cli.App{
		Name:                 "chronikctl",
		Usage:                "operate a Chronik Stream cluster",
		Writer:               stdout,
		ErrWriter:            stderr,
		Flags:                globalFlags(true),
		HideHelpCommand:      true,
		EnableBashCompletion: false,
		// run maps errors to exit codes; the library must not exit.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return &exitError{code: exitFailure, msg: err.Error()}
		},
		Commands: []*cli.Command{
			clusterCommand(s),
			transferLeaderCommand(s),
			rebalanceCommand(s),
			nodeCommand(s),
			topicCommand(s),
			groupCommand(s),
		},
	}
	for _, c := range app.Commands {
		prepare(s, c, c.Name)
	}
	return app
}

// prepare gives every command the global flags and wraps every action so
// that it resolves the options first and reports its errors under the
// command's path ("node drain: ...").
func prepare(s *session, c *cli.Command, path string) {
	c.Flags = append(c.Flags, globalFlags(false)...)
	c.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
		return &exitError{code: exitFailure, msg: path + ": " + err.Error()}
	}
	if c.Action != nil {
		action := c.Action
		c.Action = func(cc *cli.Context) error {
			args, err := interspersed(cc)
			if err == nil && c.ArgsUsage == "" && len(args) > 0 {
				err = fmt.Errorf("unexpected argument %q", args[0])
			}
			if err != nil {
				return &exitError{code: exitFailure, msg: path + ": " + err.Error()}
			}
			s.args = args
			s.resolve(cc)
			return s.describeError(path, action(cc))
		}
	}
	for _, sub := range c.Subcommands {
		prepare(s, sub, path+" "+sub.Name)
	}
}

// resolve reads the global options. A flag given after the command wins
// over one given before it, which wins over its env var; every level has the
// same defaults.
func (s *session) resolve(c *cli.Context) {
	pick := func(name string) *cli.Context {
		for _, x := range c.Lineage() {
			if x.Command != nil && hasFlag(x.Command.Flags, name) && x.IsSet(name) {
				return x
			}
		}
		return c
	}
	s.server = pick(flagServer).String(flagServer)
	s.timeout = pick(flagTimeout).Duration(flagTimeout)
	s.json = pick(flagJSON).Bool(flagJSON)
	s.bootstrap = nil
	for _, a := range strings.Split(pick(flagBootstrap).String(flagBootstrap), ",") {
		if a = strings.TrimSpace(a); a != "" {
			s.bootstrap = append(s.bootstrap, a)
		}
	}
	if len(s.bootstrap) == 0 {
		s.bootstrap = []string{s.server}
	}
}

// interspersed applies the flags that follow positional arguments
// (`node drain 3 --json`), which the flag package leaves as arguments, and
// returns the positional arguments alone.
func interspersed(c *cli.Context) ([]string, error) {
	var pos []string
	args := c.Args().Slice()
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(pos, args[i+1:]...), nil
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := lookupFlag(c.Command.Flags, name)
		if f == nil {
			return nil, fmt.Errorf("flag provided but not defined: %s", a)
		}
		if bf, ok := f.(*cli.BoolFlag); ok && bf != nil {
			if !hasVal {
				val = "true"
			}
		} else if !hasVal {
			if i+1 == len(args) {
				return nil, fmt.Errorf("flag needs an argument: %s", a)
			}
			i++
			val = args[i]
		}
		if err := c.Set(f.Names()[0], val); err != nil {
			return nil, fmt.Errorf("invalid value %q for flag %s: %w", val, a, err)
		}
	}
	return pos, nil
}

func lookupFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func hasFlag(flags []cli.Flag, name string) bool {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// describeError turns an action's error into an exitError whose message is
// plain: the server's own message for a Connect error, and "cannot reach"
// with exit code 2 when the server did not answer.
func (s *session) describeError(path string, err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			ee.msg = path + ": " + ee.msg
		}
		return ee
	}
	if unreachable(err) {
		return &exitError{code: exitUnreachable,
			msg: fmt.Sprintf("%s: cannot reach %s: %s", path, s.target, rootCause(err))}
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return &exitError{code: exitFailure, msg: path + ": " + ce.Message()}
	}
	return &exitError{code: exitFailure, msg: path + ": " + err.Error()}
}

// unreachable reports whether err means the server could not be reached at
// all (a dial or transport failure, or no answer before our own deadline),
// as opposed to an answer that reports a failure.
func unreachable(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// rootCause is the innermost error message, without the wrapping layers that
// repeat the URL and the Connect code.
func rootCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		var ne *net.OpError
		if errors.As(err, &ne) && !errors.As(next, &ne) {
			return err.Error()
		}
		err = next
	}
}

// admin returns an admin API client for --server.
func (s *session) admin() adminv1connect.AdminServiceClient {
	s.target = s.server
	base := s.server
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return adminv1connect.NewAdminServiceClient(&http.Client{}, base)
}

// callCtx bounds one admin call by --timeout plus extra, the time the server
// itself may spend waiting (for a leader election, say).
func (s *session) callCtx(ctx context.Context, extra time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout+extra)
}

// kafka returns a Kafka admin client for --bootstrap (default --server);
// the caller closes it.
func (s *session) kafka() (*kadm.Client, error) {
	s.target = strings.Join(s.bootstrap, ",")
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.bootstrap...), kgo.ClientID("chronikctl"))
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32(s.timeout.Milliseconds()))
	return adm, nil
}
