package bench

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Environment of the kfake child role.
const (
	roleEnv      = "CHRONIK_BENCH_ROLE"
	kfakePortEnv = "CHRONIK_BENCH_KFAKE_PORT"
)

// MaybeServeKfake turns this process into the kfake child when it was
// started as one (CHRONIK_BENCH_ROLE=kfake): it serves a one-broker kfake
// cluster on 127.0.0.1:$CHRONIK_BENCH_KFAKE_PORT until SIGTERM or SIGINT and
// exits. Otherwise it returns at once. Call it first in main and TestMain.
func MaybeServeKfake() {
	if os.Getenv(roleEnv) != "kfake" {
		return
	}
	if err := serveKfake(os.Getenv(kfakePortEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "kfake child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func serveKfake(portStr string) error {
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 {
		return fmt.Errorf("bad %s %q", kfakePortEnv, portStr)
	}
	// Signals first, so a parent that stops us right after we listen is
	// not lost.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	c, err := newKfake(port)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "kfake listening on", c.ListenAddrs())
	<-sig
	c.Close()
	return nil
}

// newKfake starts the reference peer: one broker, in memory, on 127.0.0.1.
func newKfake(port int) (*kfake.Cluster, error) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port))
	if err != nil {
		return nil, fmt.Errorf("start kfake on port %d: %w", port, err)
	}
	return c, nil
}
