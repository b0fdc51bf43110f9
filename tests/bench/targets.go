package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// target is one Kafka endpoint under measurement.
type target struct {
	Name    string   `json:"name"`  // kfake, standalone, cluster or an external name
	Label   string   `json:"label"` // as printed, e.g. "cluster rf3"
	Brokers []string `json:"brokers"`
	RF      int16    `json:"replication_factor"`
	Mode    string   `json:"mode"` // child process, in-process or external

	nodes  []*node
	inproc *kfake.Cluster
}

// pids lists the target's broker processes; empty for in-process and
// external targets.
func (t *target) pids() []int {
	var ps []int
	for _, n := range t.nodes {
		if p := n.pid(); p != 0 {
			ps = append(ps, p)
		}
	}
	return ps
}

// diskWritten sums write_bytes over the target's broker processes; ok is
// false for targets without processes of their own or when one could not
// be read.
func (t *target) diskWritten() (n int64, ok bool) {
	pids := t.pids()
	for _, pid := range pids {
		b, err := procWriteBytes(pid)
		if err != nil {
			return 0, false
		}
		n += b
	}
	return n, len(pids) > 0
}

// close stops every process of the target and waits for them. All get
// SIGTERM at once, so no node waits on a peer that is still up.
func (t *target) close() {
	for _, n := range t.nodes {
		n.signal(syscall.SIGTERM)
	}
	for _, n := range t.nodes {
		n.stop(10 * time.Second)
	}
	if t.inproc != nil {
		t.inproc.Close()
	}
}

// start brings up the named target with data below dir. The error says why
// the target is not available.
func (r *runner) start(ctx context.Context, name, dir string) (*target, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("target dir: %w", err)
	}
	switch name {
	case TargetKfake:
		return r.startKfake(ctx, dir)
	case TargetStandalone:
		return r.startStandalone(ctx, dir)
	case TargetCluster:
		return r.startCluster(ctx, dir)
	}
	for _, x := range r.cfg.External {
		if x.Name == name {
			return r.checkExternal(ctx, x)
		}
	}
	return nil, fmt.Errorf("unknown target %q", name)
}

func (r *runner) startKfake(ctx context.Context, dir string) (*target, error) {
	port, err := freePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	t := &target{Name: TargetKfake, Label: TargetKfake, RF: 1}
	if r.cfg.KfakeMode == "inproc" {
		c, err := newKfake(port)
		if err != nil {
			return nil, err
		}
		t.inproc, t.Mode, t.Brokers = c, "in-process", c.ListenAddrs()
		return t, nil
	}
	exe := r.cfg.SelfExe
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find own executable for the kfake child: %w", err)
		}
	}
	n := &node{
		name: "kfake", host: "127.0.0.1", port: port, bin: exe, logger: r.log,
		env:     []string{roleEnv + "=kfake", kfakePortEnv + "=" + strconv.Itoa(port)},
		logPath: filepath.Join(dir, "kfake.log"),
	}
	t.Mode, t.Brokers, t.nodes = "child process", []string{n.addr()}, []*node{n}
	if err := r.launch(ctx, t, r.cfg.Plan.ReadyLimit); err != nil {
		return nil, err
	}
	return t, nil
}

func (r *runner) startStandalone(ctx context.Context, dir string) (*target, error) {
	if err := r.checkServerBin(); err != nil {
		return nil, err
	}
	port, err := freePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	n := r.serverNode("standalone", "127.0.0.1", port, filepath.Join(dir, "data"), nil)
	n.logPath = filepath.Join(dir, "server.log")
	t := &target{Name: TargetStandalone, Label: TargetStandalone, RF: 1, Mode: "child process",
		Brokers: []string{n.addr()}, nodes: []*node{n}}
	if err := r.launch(ctx, t, r.cfg.Plan.ReadyLimit); err != nil {
		return nil, err
	}
	return t, nil
}

// clusterSize is the number of nodes of the cluster target.
const clusterSize = 3

func (r *runner) startCluster(ctx context.Context, dir string) (*target, error) {
	if err := r.checkServerBin(); err != nil {
		return nil, err
	}
	hosts := make([]string, clusterSize)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("127.0.0.%d", i+1)
	}
	kport, err := freePort(hosts...)
	if err != nil {
		return nil, err
	}
	rport, err := freePort(hosts...)
	for err == nil && rport == kport {
		rport, err = freePort(hosts...)
	}
	if err != nil {
		return nil, err
	}
	t := &target{Name: TargetCluster, Label: "cluster rf3", RF: clusterSize, Mode: "child processes"}
	for i, h := range hosts {
		id := i + 1
		conf := filepath.Join(dir, fmt.Sprintf("node%d-cluster.toml", id))
		if err := os.WriteFile(conf, []byte(clusterTOML(id, hosts, kport, rport, r.cfg.RaftElectionMs)), 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", conf, err)
		}
		n := r.serverNode(fmt.Sprintf("node%d", id), h, kport, filepath.Join(dir, fmt.Sprintf("node%d", id)),
			[]string{"CHRONIK_CLUSTER_CONFIG=" + conf})
		n.id = int32(id)
		n.logPath = filepath.Join(dir, fmt.Sprintf("node%d.log", id))
		t.nodes = append(t.nodes, n)
		t.Brokers = append(t.Brokers, n.addr())
	}
	if err := r.launch(ctx, t, r.cfg.Plan.ClusterReady); err != nil {
		return nil, err
	}
	return t, nil
}

// clusterTOML is node id's cluster.toml in the guide's format.
func clusterTOML(id int, hosts []string, kport, rport, electionMs int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "enabled = true\nnode_id = %d\nreplication_factor = %d\nmin_insync_replicas = 2\n", id, len(hosts))
	if electionMs > 0 {
		hb := max(electionMs/10, 1)
		fmt.Fprintf(&b, "\n[raft]\nelection_timeout_ms = %d\nheartbeat_interval_ms = %d\n", electionMs, hb)
	}
	for i, h := range hosts {
		fmt.Fprintf(&b, "\n[[peers]]\nid = %d\naddr = %q\nraft_port = %d\n", i+1, net.JoinHostPort(h, strconv.Itoa(kport)), rport)
	}
	return b.String()
}

func (r *runner) serverNode(name, host string, port int, dataDir string, extra []string) *node {
	env := []string{
		"CHRONIK_BIND_ADDR=" + host,
		"CHRONIK_ADVERTISED_ADDR=" + host,
		"CHRONIK_KAFKA_PORT=" + strconv.Itoa(port),
		"CHRONIK_ADVERTISED_PORT=" + strconv.Itoa(port),
		"CHRONIK_DATA_DIR=" + dataDir,
		"CHRONIK_LOG_LEVEL=info",
	}
	return &node{name: name, host: host, port: port, dataDir: dataDir, bin: r.cfg.ServerBin,
		args: []string{"standalone"}, env: append(env, extra...), http: true, logger: r.log}
}

func (r *runner) checkServerBin() error {
	st, err := os.Stat(r.cfg.ServerBin)
	if err != nil {
		return fmt.Errorf("no server binary at %s (scripts/bench/run.sh builds it)", r.cfg.ServerBin)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable", r.cfg.ServerBin)
	}
	return nil
}

// launch starts every node of t and waits until all are ready within limit;
// on failure it stops what it started.
func (r *runner) launch(ctx context.Context, t *target, limit time.Duration) error {
	for _, n := range t.nodes {
		if err := os.MkdirAll(filepath.Dir(n.logPath), 0o755); err != nil {
			t.close()
			return fmt.Errorf("log dir: %w", err)
		}
		if err := n.start(); err != nil {
			t.close()
			return err
		}
	}
	ctx, cancel := context.WithTimeoutCause(ctx, limit, fmt.Errorf("not ready within %v", limit))
	defer cancel()
	if err := waitAllReady(ctx, t.nodes); err != nil {
		t.close()
		return err
	}
	return nil
}

// waitAllReady polls every node until all are ready; a node that exits or
// the end of ctx ends the wait.
func waitAllReady(ctx context.Context, nodes []*node) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	ready := make([]bool, len(nodes))
	for {
		all := true
		for i, n := range nodes {
			select {
			case <-n.exited():
				return fmt.Errorf("%s exited: %s", n.name, n.lastLine())
			default:
			}
			if !ready[i] {
				ready[i] = n.ready(ctx)
			}
			all = all && ready[i]
		}
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			var waiting []string
			for i, n := range nodes {
				if !ready[i] {
					waiting = append(waiting, n.name)
				}
			}
			return fmt.Errorf("%s %w", strings.Join(waiting, ", "), context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// checkExternal makes sure an external target answers metadata.
func (r *runner) checkExternal(ctx context.Context, x External) (*target, error) {
	t := &target{Name: x.Name, Label: x.Name, Brokers: x.Brokers, RF: r.cfg.ExternalRF, Mode: "external"}
	cl, err := r.newClient(t)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Plan.ReadyLimit)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		return nil, fmt.Errorf("%s does not answer: %w", strings.Join(x.Brokers, ","), err)
	}
	return t, nil
}
