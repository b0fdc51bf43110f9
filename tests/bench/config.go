package bench

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"
)

// Target names built into the driver.
const (
	TargetKfake      = "kfake"
	TargetStandalone = "standalone"
	TargetCluster    = "cluster"
)

// ErrUsage is returned by ParseFlags for a bad command line.
var ErrUsage = errors.New("bench: usage")

// ProduceCase is one cell of the produce matrix.
type ProduceCase struct {
	RecordSize int   `json:"record_size"`
	Acks       int16 `json:"acks"`
	Partitions int32 `json:"partitions"`
}

// Name is the case's label in the table, e.g. "produce 1KiB acks=-1 p=1".
func (c ProduceCase) Name() string {
	return fmt.Sprintf("produce %s acks=%d p=%d", sizeLabel(c.RecordSize), c.Acks, c.Partitions)
}

func sizeLabel(n int) string {
	if n%1024 == 0 {
		return fmt.Sprintf("%dKiB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}

// Plan holds every bound of a run. FullPlan and QuickPlan are the two the
// command line offers; tests shrink them further.
type Plan struct {
	Name string `json:"name"`

	Cases         []ProduceCase `json:"produce_cases"`
	Producers     int           `json:"producers"`        // concurrent kgo clients per produce case
	Linger        time.Duration `json:"linger_ns"`        // kgo ProducerLinger for throughput cases
	CaseDuration  time.Duration `json:"case_duration_ns"` // time bound per produce case
	CaseMaxBytes  int64         `json:"case_max_bytes"`   // payload bound per produce case
	CaseMaxRecs   int64         `json:"case_max_records"` // record bound per produce case
	ConsumeRecs   int64         `json:"consume_records"`  // 1 KiB records filled, then consumed
	ConsumeParts  int32         `json:"consume_partitions"`
	ConsumeReads  int           `json:"consume_reads"`    // full reads of the topic; the median counts
	ConsumeLimit  time.Duration `json:"consume_limit_ns"` // time bound for fill and for consume each
	SteadyRate    int           `json:"steady_rate"`      // records/s in the rate-limited phase
	SteadySize    int           `json:"steady_record_size"`
	SteadyFor     time.Duration `json:"steady_duration_ns"`
	FsyncOps      int           `json:"fsync_ops"`
	FsyncFor      time.Duration `json:"fsync_duration_ns"`
	SeqBytes      int64         `json:"seq_write_bytes"`
	SeqSyncEvery  int64         `json:"seq_write_sync_every"`
	SeqFor        time.Duration `json:"seq_write_duration_ns"`
	NetBytes      int64         `json:"loopback_bytes"`
	NetFor        time.Duration `json:"loopback_duration_ns"`
	FailoverKills int           `json:"failover_kills"`
	FailoverLimit time.Duration `json:"failover_limit_ns"` // per kill: until produce succeeds
	ScaleLevels   []int         `json:"scale_levels"`
	ScaleSettle   time.Duration `json:"scale_settle_ns"`
	ScaleWindow   time.Duration `json:"scale_window_ns"`
	ScaleLimit    time.Duration `json:"scale_limit_ns"` // create + all leaders elected
	ReadyLimit    time.Duration `json:"ready_limit_ns"` // standalone and kfake start
	ClusterReady  time.Duration `json:"cluster_ready_ns"`
	Budget        time.Duration `json:"budget_ns"` // the whole run
}

func matrix() []ProduceCase {
	var cs []ProduceCase
	for _, size := range []int{1024, 100} {
		for _, acks := range []int16{-1, 1} {
			for _, p := range []int32{1, 16} {
				cs = append(cs, ProduceCase{RecordSize: size, Acks: acks, Partitions: p})
			}
		}
	}
	return cs
}

// FullPlan is the default run: under ten minutes on two cores.
func FullPlan() Plan {
	return Plan{
		Name:          "full",
		Cases:         matrix(),
		Producers:     4,
		Linger:        10 * time.Millisecond,
		CaseDuration:  6 * time.Second,
		CaseMaxBytes:  1 << 30,
		CaseMaxRecs:   4_000_000,
		ConsumeRecs:   200_000,
		ConsumeParts:  16,
		ConsumeReads:  3,
		ConsumeLimit:  15 * time.Second,
		SteadyRate:    1000,
		SteadySize:    1024,
		SteadyFor:     8 * time.Second,
		FsyncOps:      2000,
		FsyncFor:      3 * time.Second,
		SeqBytes:      1 << 30,
		SeqSyncEvery:  4 << 20,
		SeqFor:        4 * time.Second,
		NetBytes:      8 << 30,
		NetFor:        3 * time.Second,
		FailoverKills: 5,
		FailoverLimit: 30 * time.Second,
		ScaleLevels:   []int{1, 100, 1000},
		ScaleSettle:   2 * time.Second,
		ScaleWindow:   5 * time.Second,
		ScaleLimit:    60 * time.Second,
		ReadyLimit:    30 * time.Second,
		ClusterReady:  30 * time.Second,
		Budget:        9*time.Minute + 30*time.Second,
	}
}

// QuickPlan is the CI smoke run: every part once, small, under two minutes.
func QuickPlan() Plan {
	p := FullPlan()
	p.Name = "quick"
	p.CaseDuration = time.Second
	p.CaseMaxBytes = 128 << 20
	p.CaseMaxRecs = 500_000
	p.ConsumeRecs = 20_000
	p.ConsumeReads = 1
	p.ConsumeLimit = 5 * time.Second
	p.SteadyRate = 500
	p.SteadyFor = 2 * time.Second
	p.FsyncOps = 300
	p.FsyncFor = time.Second
	p.SeqBytes = 128 << 20
	p.SeqFor = time.Second
	p.NetBytes = 2 << 30
	p.NetFor = time.Second
	p.FailoverKills = 2
	p.FailoverLimit = 15 * time.Second
	p.ScaleLevels = []int{1, 100}
	p.ScaleSettle = 300 * time.Millisecond
	p.ScaleWindow = time.Second
	p.ScaleLimit = 20 * time.Second
	p.ReadyLimit = 20 * time.Second
	p.ClusterReady = 20 * time.Second
	p.Budget = 100 * time.Second // leaves room to stop targets within two minutes
	return p
}

// External is a Kafka cluster the driver does not start, given as
// --target name=host:port[,host:port...].
type External struct {
	Name    string   `json:"name"`
	Brokers []string `json:"brokers"`
}

// Config is everything one run needs.
type Config struct {
	Logger         *slog.Logger // progress and child-process trouble; required
	Out            io.Writer    // the table; required
	Plan           Plan
	Targets        []string   // built-in targets to run, in order
	External       []External // more targets, measured after the built-in ones
	ExternalRF     int16      // replication factor for topics on external targets
	KfakeMode      string     // "child" (default) or "inproc"
	ServerBin      string     // chronik-server binary
	WorkRoot       string     // scratch data directories go below it (a real disk)
	ResultsDir     string     // <timestamp>.json and latest.json go here; "" writes none
	KeepData       bool       // keep scratch data and server logs after the run
	SelfExe        string     // executable re-run for the kfake child; "" = os.Executable
	RaftElectionMs int        // cluster.toml [raft] election_timeout_ms; 0 = server default
	NoServer       string     // set: standalone and cluster are not available, for this reason
}

// ParseFlags builds a Config from command-line arguments. Logger and Out are
// left for the caller.
func ParseFlags(args []string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("chronik-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "CI smoke run: every part once with small bounds, under two minutes")
	targets := fs.String("targets", "kfake,standalone,cluster", "built-in targets to run, comma separated")
	var ext externalFlag
	fs.Var(&ext, "target", "extra Kafka target name=host:port[,host:port...] (repeatable, 127.0.0.0/8 only)")
	extRF := fs.Int("target-rf", 1, "replication factor for topics on --target clusters")
	kfakeMode := fs.String("kfake", "child", "run kfake in a child process (child) or in this process (inproc)")
	serverBin := fs.String("server-bin", "bin/chronik-server", "chronik-server binary")
	workRoot := fs.String("work-dir", "bench-results", "scratch data directories go below this (must be a real disk, not tmpfs)")
	results := fs.String("results", "bench-results", "directory for <timestamp>.json and latest.json")
	keep := fs.Bool("keep-data", false, "keep scratch data and server logs")
	noServer := fs.String("no-server", "", "mark standalone and cluster not available, giving this reason (e.g. the build failed)")
	election := fs.Int("cluster-election-ms", 0, "cluster.toml [raft] election_timeout_ms (0 leaves the server default)")
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	cfg := Config{
		Plan: FullPlan(), External: ext, ExternalRF: int16(*extRF), KfakeMode: *kfakeMode,
		ServerBin: *serverBin, WorkRoot: *workRoot, ResultsDir: *results, KeepData: *keep,
		RaftElectionMs: *election, NoServer: *noServer,
	}
	if *quick {
		cfg.Plan = QuickPlan()
	}
	for _, t := range strings.Split(*targets, ",") {
		switch t = strings.TrimSpace(t); t {
		case "":
		case TargetKfake, TargetStandalone, TargetCluster:
			cfg.Targets = append(cfg.Targets, t)
		default:
			return Config{}, fmt.Errorf("%w: unknown target %q (want kfake, standalone, cluster)", ErrUsage, t)
		}
	}
	if cfg.KfakeMode != "child" && cfg.KfakeMode != "inproc" {
		return Config{}, fmt.Errorf("%w: --kfake must be child or inproc", ErrUsage)
	}
	if cfg.ExternalRF < 1 {
		return Config{}, fmt.Errorf("%w: --target-rf must be at least 1", ErrUsage)
	}
	return cfg, nil
}

type externalFlag []External

func (e *externalFlag) String() string { return fmt.Sprint([]External(*e)) }

func (e *externalFlag) Set(s string) error {
	name, addrs, ok := strings.Cut(s, "=")
	if !ok || name == "" || addrs == "" {
		return fmt.Errorf("want name=host:port[,host:port...], got %q", s)
	}
	switch name {
	case TargetKfake, TargetStandalone, TargetCluster:
		return fmt.Errorf("name %q is taken by a built-in target", name)
	}
	x := External{Name: name}
	for _, a := range strings.Split(addrs, ",") {
		if err := checkLoopback(a); err != nil {
			return err
		}
		x.Brokers = append(x.Brokers, a)
	}
	*e = append(*e, x)
	return nil
}

// checkLoopback refuses anything but a literal 127.0.0.0/8 host:port: the
// benchmark never sends load off the machine.
func checkLoopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("address %q: %w", hostport, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() == nil || ip.To4()[0] != 127 {
		return fmt.Errorf("address %q: only 127.0.0.0/8 addresses are allowed", hostport)
	}
	return nil
}
