package raftnet

import (
	"flag"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

var (
	benchGroups    = flag.Int("raftnet.groups", 1000, "Raft groups in BenchmarkIdleGroups")
	benchHeartbeat = flag.Duration("raftnet.heartbeat", 2*time.Second, "HeartbeatTimeout of the groups in BenchmarkIdleGroups")
	benchWindow    = flag.Duration("raftnet.window", 5*time.Second, "CPU measurement window of BenchmarkIdleGroups")
)

// benchTransport is one side of an AppendEntries benchmark.
type benchTransport interface {
	raft.Transport
	raft.WithClose
}

// newBenchPair returns a sender and a receiver of the given kind, the
// receiver answering every AppendEntries with success.
func newBenchPair(b *testing.B, kind string) (sender, receiver benchTransport) {
	switch kind {
	case "raftnet":
		a := newTestMux(b, "127.0.0.1:0", quietMux)
		c := newTestMux(b, "127.0.0.1:0", quietMux)
		sender, receiver = a.Transport("bench"), c.Transport("bench")
	case "nettransport":
		mk := func() *raft.NetworkTransport {
			tr, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 3, 10*time.Second, hclog.NewNullLogger())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = tr.Close() })
			return tr
		}
		sender, receiver = mk(), mk()
	default:
		b.Fatalf("unknown transport %q", kind)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case rpc := <-receiver.Consumer():
				answerAppend(rpc)
			case <-done:
				return
			}
		}
	}()
	b.Cleanup(func() {
		close(done)
		wg.Wait()
	})
	return sender, receiver
}

func quietMux(c *Config) { c.Logger = nil; c.RPCTimeout = 10 * time.Second }

// BenchmarkAppendEntries16KiB compares raftnet with raft.NetworkTransport
// on loopback: each op is one AppendEntries of 16 entries of 16 KiB.
func BenchmarkAppendEntries16KiB(b *testing.B) {
	const entrySize, batch = 16 << 10, 16
	entries := make([]*raft.Log, batch)
	for i := range entries {
		entries[i] = &raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: make([]byte, entrySize)}
	}
	for _, kind := range []string{"raftnet", "nettransport"} {
		for _, mode := range []string{"sync", "pipeline"} {
			b.Run(kind+"/"+mode, func(b *testing.B) {
				sender, receiver := newBenchPair(b, kind)
				target := receiver.LocalAddr()
				req := &raft.AppendEntriesRequest{Term: 1, Leader: []byte(sender.LocalAddr()), LeaderCommitIndex: 1, Entries: entries}
				b.SetBytes(entrySize * batch)
				b.ReportAllocs()
				// CPU per op is steadier than wall time on a shared machine.
				cpu0 := cpuTime(b)
				if mode == "sync" {
					benchSync(b, sender, target, req)
				} else {
					benchPipeline(b, sender, target, req)
				}
				b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-us/op")
			})
		}
	}
}

func benchSync(b *testing.B, tr raft.Transport, target raft.ServerAddress, req *raft.AppendEntriesRequest) {
	var resp raft.AppendEntriesResponse
	for b.Loop() {
		if err := tr.AppendEntries("n1", target, req, &resp); err != nil || !resp.Success {
			b.Fatalf("append: %+v %v", resp, err)
		}
	}
}

func benchPipeline(b *testing.B, tr raft.Transport, target raft.ServerAddress, req *raft.AppendEntriesRequest) {
	p, err := tr.AppendEntriesPipeline("n1", target)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	var (
		wg   sync.WaitGroup
		sent = make(chan struct{}, 1<<20)
		errc = make(chan error, 1)
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range sent {
			f := <-p.Consumer()
			if err := f.Error(); err != nil || !f.Response().Success {
				errc <- fmt.Errorf("pipelined append: %+v %v", f.Response(), err)
				for range sent {
				}
				return
			}
		}
	}()
	for b.Loop() {
		if _, err := p.AppendEntries(req, new(raft.AppendEntriesResponse)); err != nil {
			b.Fatal(err)
		}
		sent <- struct{}{}
	}
	close(sent)
	wg.Wait()
	select {
	case err := <-errc:
		b.Fatal(err)
	default:
	}
}

// BenchmarkIdleGroups starts -raftnet.groups Raft groups on three muxes,
// waits for every group to elect a leader, then measures the process CPU
// (all three nodes) over -raftnet.window of idleness. Run it alone:
//
//	go test -run - -bench IdleGroups -benchtime 1x ./raftnet
func BenchmarkIdleGroups(b *testing.B) {
	for _, kind := range []string{"raftnet", "nettransport"} {
		b.Run(kind, func(b *testing.B) {
			for b.Loop() {
				benchIdle(b, kind)
			}
		})
	}
}

func benchIdle(b *testing.B, kind string) {
	groups, hb := *benchGroups, *benchHeartbeat
	conf := func(id raft.ServerID) *raft.Config {
		c := raft.DefaultConfig()
		c.LocalID = id
		c.HeartbeatTimeout, c.ElectionTimeout = hb, hb
		c.LeaderLeaseTimeout = hb / 2
		c.CommitTimeout = time.Second
		c.Logger = hclog.NewNullLogger()
		return c
	}
	transports, addrs := idleTransports(b, kind, groups)
	var rafts [][]*raft.Raft
	var wg sync.WaitGroup
	defer func() {
		for _, rs := range rafts {
			for _, r := range rs {
				wg.Add(1)
				go func() { defer wg.Done(); _ = r.Shutdown().Error() }()
			}
		}
		wg.Wait()
	}()
	start := time.Now()
	for g := range groups {
		var peers []raft.Server
		for i := range 3 {
			peers = append(peers, raft.Server{ID: raft.ServerID(fmt.Sprintf("n%d", i)), Address: addrs(g, i)})
		}
		var rs []*raft.Raft
		for i := range 3 {
			c := conf(peers[i].ID)
			logs, snaps := raft.NewInmemStore(), raft.NewDiscardSnapshotStore()
			tr := transports(g, i)
			if err := raft.BootstrapCluster(c, logs, logs, snaps, tr, raft.Configuration{Servers: peers}); err != nil {
				b.Fatal(err)
			}
			r, err := raft.NewRaft(c, &testFSM{}, logs, logs, snaps, tr)
			if err != nil {
				b.Fatal(err)
			}
			rs = append(rs, r)
		}
		rafts = append(rafts, rs)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for g := 0; g < groups; {
		if time.Now().After(deadline) {
			b.Fatalf("group %d has no leader after 5 minutes", g)
		}
		if hasLeader(rafts[g]) {
			g++
			continue
		}
		time.Sleep(20 * time.Millisecond)
	}
	elected := time.Since(start)
	// Let the leaders' first appends settle before measuring.
	time.Sleep(2 * hb)
	runtime.GC()
	cpu0, wall0 := cpuTime(b), time.Now()
	time.Sleep(*benchWindow)
	cpu := float64(cpuTime(b)-cpu0) / float64(time.Since(wall0)) * 100
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(cpu, "cpu%")
	b.ReportMetric(elected.Seconds(), "elect-s")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
	b.Logf("%s: %d groups x 3 replicas, heartbeat timeout %v: leaders in %v, idle CPU %.0f%% of a core, heap in use %d MiB",
		kind, groups, hb, elected.Round(time.Millisecond), cpu, ms.HeapInuse>>20)
}

// idleTransports returns, per kind, the transport of replica i of group g
// and its address.
func idleTransports(b *testing.B, kind string, groups int) (func(g, i int) raft.Transport, func(g, i int) raft.ServerAddress) {
	if kind == "raftnet" {
		var muxes []*Mux
		for range 3 {
			muxes = append(muxes, newTestMux(b, "127.0.0.1:0", quietMux))
		}
		b.Cleanup(func() {
			for i, m := range muxes {
				st := m.Stats()
				b.Logf("mux %d: %d conns, %.1f frames per flush", i, st.OpenConns, float64(st.FramesSent)/float64(max(st.Flushes, 1)))
			}
		})
		return func(g, i int) raft.Transport { return muxes[i].Transport(fmt.Sprintf("g%d", g)) },
			func(_, i int) raft.ServerAddress { return raft.ServerAddress(muxes[i].LocalAddr()) }
	}
	trs := make([][]*raft.NetworkTransport, groups)
	for g := range trs {
		for range 3 {
			tr, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 3, 10*time.Second, hclog.NewNullLogger())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = tr.Close() })
			trs[g] = append(trs[g], tr)
		}
	}
	return func(g, i int) raft.Transport { return trs[g][i] },
		func(g, i int) raft.ServerAddress { return trs[g][i].LocalAddr() }
}

func hasLeader(rs []*raft.Raft) bool {
	for _, r := range rs {
		if r.State() == raft.Leader {
			return true
		}
	}
	return false
}

// cpuTime is the user plus system CPU time of this process.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
