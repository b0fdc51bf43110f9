// Command chronik-server runs a Chronik node: `standalone` (controller and
// broker in one process; a single node without CHRONIK_CLUSTER_CONFIG),
// `broker` or `controller`.
package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/chronik-stream/chronik/controlplane/config"
	"github.com/chronik-stream/chronik/dataplane/broker"
	"github.com/chronik-stream/chronik/dataplane/internal/storage"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	app := &cli.App{
		Name:    "chronik-server",
		Usage:   "Kafka-compatible streaming server",
		Version: version,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "advertised-addr", EnvVars: []string{"CHRONIK_ADVERTISED_ADDR"}, Usage: "host advertised to clients (default: bind address, or localhost)"},
			&cli.IntFlag{Name: "advertised-port", EnvVars: []string{"CHRONIK_ADVERTISED_PORT"}, Usage: "port advertised to clients (default: Kafka port)"},
			&cli.IntFlag{Name: "kafka-port", EnvVars: []string{"CHRONIK_KAFKA_PORT"}, Usage: "Kafka (and HTTP) listen port (default 9092, or the port of this node's addr in cluster.toml)"},
			&cli.StringFlag{Name: "bind-addr", EnvVars: []string{"CHRONIK_BIND_ADDR"}, Value: "0.0.0.0", Usage: "listen address"},
			&cli.StringFlag{Name: "data-dir", EnvVars: []string{"CHRONIK_DATA_DIR"}, Value: "./data", Usage: "data directory"},
			&cli.StringFlag{Name: "cluster-config", EnvVars: []string{"CHRONIK_CLUSTER_CONFIG"}, Usage: "cluster.toml; without it the node runs alone"},
			&cli.StringFlag{Name: "log-level", EnvVars: []string{"CHRONIK_LOG_LEVEL", "RUST_LOG"}, Value: "info", Usage: "error, warn, info, debug"},
			&cli.BoolFlag{Name: "auto-create-topics", EnvVars: []string{"CHRONIK_AUTO_CREATE_TOPICS"}, Value: true, Usage: "auto.create.topics.enable"},
			&cli.BoolFlag{Name: "pprof", EnvVars: []string{"CHRONIK_PPROF"}, Usage: "serve Go profiles under /debug/pprof/ on the Kafka port's HTTP side"},
			&cli.IntFlag{Name: "cached-tail-mb", EnvVars: []string{"CHRONIK_CACHED_TAIL_MB"}, Value: storage.DefaultCachedTailBytes >> 20, Usage: "MiB at the end of each partition kept in the page cache; older data is handed back once on disk and read from disk (0: keep all, the kernel evicts)"},
			&cli.IntFlag{Name: "num-partitions", EnvVars: []string{"CHRONIK_NUM_PARTITIONS"}, Value: 1, Usage: "partitions of auto-created topics"},
		},
		Commands: []*cli.Command{
			{Name: "standalone", Usage: "run a node with the roles cluster.toml gives it (both by default), or a single node without CHRONIK_CLUSTER_CONFIG", Action: func(c *cli.Context) error { return run(c, "") }},
			{Name: "controller", Usage: "run a dedicated controller (its peer entry must have roles = [\"controller\"])", Action: func(c *cli.Context) error { return run(c, config.RoleController) }},
			{Name: "broker", Usage: "run a dedicated broker (its peer entry must have roles = [\"broker\"])", Action: func(c *cli.Context) error { return run(c, config.RoleBroker) }},
		},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "chronik-server:", err)
		os.Exit(1)
	}
}

// run starts a node; only, when set, is the single role the command
// promises the node plays.
func run(c *cli.Context, only config.Role) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: parseLevel(c.String("log-level"))}))
	// Disaster-recovery uploads are not built: refuse to run as if they
	// were.
	if be := os.Getenv("OBJECT_STORE_BACKEND"); be != "" && be != "local" {
		return fmt.Errorf("OBJECT_STORE_BACKEND=%s is not supported by this build (only local); unset it to keep data in CHRONIK_DATA_DIR only", be)
	}
	cluster, err := loadCluster(c.String("cluster-config"), only)
	if err != nil {
		return err
	}
	cfg := broker.Config{
		Cluster:           cluster,
		DataDir:           c.String("data-dir"),
		BindAddr:          c.String("bind-addr"),
		KafkaPort:         c.Int("kafka-port"),
		AdvertisedHost:    c.String("advertised-addr"),
		AdvertisedPort:    c.Int("advertised-port"),
		Version:           version,
		Logger:            logger,
		AutoCreateTopics:  c.Bool("auto-create-topics"),
		DefaultPartitions: int32(c.Int("num-partitions")),
		Profiling:         c.Bool("pprof"),
	}
	cfg.Storage.CachedTailBytes = int64(c.Int("cached-tail-mb")) << 20
	if cfg.Storage.CachedTailBytes <= 0 {
		cfg.Storage.CachedTailBytes = -1
	}
	b, err := broker.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err = b.Run(ctx)
	logger.Info("Chronik server stopped")
	return err
}

// loadCluster reads cluster.toml when path is set. A `controller` or
// `broker` command needs the node's peer entry to play exactly that role,
// so that every node's file agrees on who runs __meta.
func loadCluster(path string, only config.Role) (*config.Cluster, error) {
	if path == "" {
		if only != "" {
			return nil, fmt.Errorf("chronik-server %s needs CHRONIK_CLUSTER_CONFIG (a cluster.toml)", only)
		}
		return nil, nil
	}
	cl, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if !cl.Enabled {
		if only != "" {
			return nil, fmt.Errorf("%s: enabled = false, but chronik-server %s needs cluster mode", path, only)
		}
		return nil, nil
	}
	if self := cl.Self(); only != "" && (len(self.Roles) != 1 || self.Roles[0] != only) {
		return nil, fmt.Errorf("%s: node %d has roles %v; chronik-server %s needs roles = [%q] in its [[peers]] entry", path, self.ID, self.Roles, only, only)
	}
	return cl, nil
}

// parseLevel reads CHRONIK_LOG_LEVEL or a RUST_LOG-style directive such as
// "info" or "chronik=debug,warn": the most verbose level named wins.
func parseLevel(s string) slog.Level {
	level, found := slog.LevelError+4, false
	for _, part := range strings.Split(s, ",") {
		if i := strings.IndexByte(part, '='); i >= 0 {
			part = part[i+1:]
		}
		var l slog.Level
		switch strings.ToLower(strings.TrimSpace(part)) {
		case "trace", "debug":
			l = slog.LevelDebug
		case "info":
			l = slog.LevelInfo
		case "warn", "warning":
			l = slog.LevelWarn
		case "error":
			l = slog.LevelError
		default:
			continue
		}
		if !found || l < level {
			level, found = l, true
		}
	}
	if !found {
		return slog.LevelInfo
	}
	return level
}
