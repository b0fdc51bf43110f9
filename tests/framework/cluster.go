package framework

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Cluster is a set of chronik-server processes on loopback, each started
// as the deployment guide starts a node: its own cluster.toml, data
// directory and 127.0.0.N address.
type Cluster struct {
	t     testing.TB
	Nodes []*Server // Nodes[i] is node i+1
	dir   string
	opts  ClusterOptions
	peers []clusterPeer
}

type clusterPeer struct {
	id              int
	host            string
	kafkaPort, raft int
	roles           []string
	rack            string
}

// ClusterOptions shapes a test cluster; zero values take the guide's.
type ClusterOptions struct {
	Nodes             int // default 3
	ReplicationFactor int // default 3
	MinInsyncReplicas int // default 2
	// Roles, when set, gives node i+1 the roles Roles[i] (empty: both).
	Roles [][]string
	// Racks, when set, puts node i+1 in rack Racks[i].
	Racks []string
	// Extra is appended to every cluster.toml (e.g. a [raft] table).
	Extra string
	// Env is added to every node's environment.
	Env []string
}

// hostSeq spreads concurrent clusters over distinct loopback addresses.
var hostSeq atomic.Int32

// StartCluster writes the cluster.toml files, starts every node and waits
// until all are ready.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	c := NewCluster(t, opts)
	for _, n := range c.Nodes {
		n.Launch()
	}
	c.WaitReady(60 * time.Second)
	return c
}

// NewCluster prepares a cluster without starting it.
func NewCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.ReplicationFactor == 0 {
		opts.ReplicationFactor = 3
	}
	if opts.MinInsyncReplicas == 0 {
		opts.MinInsyncReplicas = 2
	}
	c := &Cluster{t: t, dir: t.TempDir(), opts: opts}
	// 127.0.<pid-derived>.<N>: distinct per test process and per cluster.
	third := (os.Getpid()%200 + int(hostSeq.Add(1))*7) % 250
	for i := 0; i < opts.Nodes; i++ {
		host := fmt.Sprintf("127.0.%d.%d", third+1, i+1)
		p := newPeer(t, i+1, host)
		if i < len(opts.Roles) {
			p.roles = opts.Roles[i]
		}
		if i < len(opts.Racks) {
			p.rack = opts.Racks[i]
		}
		c.peers = append(c.peers, p)
	}
	for _, p := range c.peers {
		c.Nodes = append(c.Nodes, c.newNode(p))
	}
	t.Cleanup(func() {
		for _, n := range c.Nodes {
			n.Kill()
		}
	})
	return c
}

// newPeer is peer id on host with a Kafka port and a Raft port of its own.
// Two free ports picked one after the other can be the same one, which
// the node would refuse as a config error.
func newPeer(t testing.TB, id int, host string) clusterPeer {
	t.Helper()
	p := clusterPeer{id: id, host: host, kafkaPort: FreePort(t, host)}
	p.raft = FreePort(t, host)
	for p.raft == p.kafkaPort {
		p.raft = FreePort(t, host)
	}
	return p
}

// AddNode appends a peer to every node's cluster.toml (taking effect at
// each node's next start) and returns the new, not yet started node.
func (c *Cluster) AddNode(roles ...string) *Server {
	c.t.Helper()
	i := len(c.peers)
	host := strings.TrimSuffix(c.peers[0].host, ".1") + "." + strconv.Itoa(i+1)
	p := newPeer(c.t, i+1, host)
	p.roles = roles
	c.peers = append(c.peers, p)
	for j, n := range c.Nodes {
		c.writeConfig(c.peers[j], n.DataDir)
	}
	n := c.newNode(p)
	c.Nodes = append(c.Nodes, n)
	return n
}

func (c *Cluster) newNode(p clusterPeer) *Server {
	dir := filepath.Join(c.dir, fmt.Sprintf("node%d", p.id))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	cfg := c.writeConfig(p, dir)
	env := append([]string{"CHRONIK_CLUSTER_CONFIG=" + cfg}, c.opts.Env...)
	// A node with a single role runs as the guide's dedicated process.
	cmd := "standalone"
	if len(p.roles) == 1 {
		cmd = p.roles[0]
	}
	return &Server{t: c.t, Host: p.host, Port: p.kafkaPort, DataDir: dir, Env: env, Args: []string{cmd}}
}

// writeConfig writes node p's cluster.toml beside its data directory.
func (c *Cluster) writeConfig(p clusterPeer, dataDir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "enabled = true\nnode_id = %d\nreplication_factor = %d\nmin_insync_replicas = %d\n",
		p.id, c.opts.ReplicationFactor, c.opts.MinInsyncReplicas)
	b.WriteString(c.opts.Extra)
	for _, q := range c.peers {
		fmt.Fprintf(&b, "\n[[peers]]\nid = %d\naddr = %q\nraft_port = %d\n", q.id, net.JoinHostPort(q.host, strconv.Itoa(q.kafkaPort)), q.raft)
		if len(q.roles) > 0 {
			fmt.Fprintf(&b, "roles = [%q]\n", strings.Join(q.roles, `", "`))
		}
		if q.rack != "" {
			fmt.Fprintf(&b, "rack = %q\n", q.rack)
		}
	}
	path := dataDir + "-cluster.toml"
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return path
}

// WaitReady waits until every running node reports ready.
func (c *Cluster) WaitReady(timeout time.Duration) {
	c.t.Helper()
	for _, n := range c.Nodes {
		if n.Running() {
			n.WaitReady(timeout)
		}
	}
}

// Node returns node id (1-based).
func (c *Cluster) Node(id int) *Server { return c.Nodes[id-1] }

// Addrs lists the Kafka addresses of the running nodes.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, n := range c.Nodes {
		if n.Running() {
			out = append(out, n.Addr())
		}
	}
	return out
}

// Metrics scrapes a node's /metrics into "name{labels}" -> value. It
// returns nil when the node does not answer.
func (s *Server) Metrics() map[string]float64 {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + s.Addr() + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

// RaftLeader returns the leader of topic/partition as the running nodes'
// raft_leader gauges report it, when at least one running node knows it
// and none disagrees; else 0.
func (c *Cluster) RaftLeader(topic string, partition int) int {
	key := fmt.Sprintf("raft_leader{topic=%q,partition=\"%d\"}", topic, partition)
	leader := 0
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		v, ok := n.Metrics()[key]
		if !ok || v == 0 {
			continue
		}
		if leader != 0 && int(v) != leader {
			return 0
		}
		leader = int(v)
	}
	if leader != 0 && !c.Node(leader).Running() {
		return 0
	}
	return leader
}
