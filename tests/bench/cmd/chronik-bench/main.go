// Command chronik-bench is the benchmark driver behind `make bench`: it
// measures kfake, chronik-server standalone and a three-node cluster side
// by side against the machine's own limits, prints a table and writes
// bench-results/<timestamp>.json and bench-results/latest.json.
//
// It exits 0 when everything it could run ran (targets that are not
// available are listed as skipped), 1 when a part failed, 2 on bad usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/chronik-stream/chronik/tests/bench"
)

func main() {
	bench.MaybeServeKfake()
	cfg, err := bench.ParseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if !errors.Is(err, bench.ErrUsage) {
			fmt.Fprintln(os.Stderr, "chronik-bench:", err)
		}
		os.Exit(2)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.Out = os.Stdout
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chronik-bench:", err)
		os.Exit(1)
	}
	if len(rep.Failures) > 0 {
		os.Exit(1)
	}
}
