package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// node is one child process the driver owns: a chronik-server or a kfake
// child. Its waiter goroutine is joined by kill and stop.
type node struct {
	name    string
	id      int32 // Kafka broker id, for cluster nodes
	host    string
	port    int
	dataDir string
	bin     string
	args    []string
	env     []string
	http    bool // readiness over GET /health/ready; otherwise a TCP dial
	logPath string
	logger  *slog.Logger

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	tail *tailBuffer
	logf *os.File
}

// addr is the Kafka host:port.
func (n *node) addr() string { return net.JoinHostPort(n.host, strconv.Itoa(n.port)) }

// start launches the process; it does not wait for readiness.
func (n *node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.done != nil {
		select {
		case <-n.done:
		default:
			return fmt.Errorf("start %s: already running", n.name)
		}
	}
	cmd := exec.Command(n.bin, n.args...)
	cmd.Env = append(os.Environ(), n.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if n.tail == nil {
		n.tail = &tailBuffer{max: 64 << 10}
	}
	var out io.Writer = n.tail
	if n.logPath != "" {
		f, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("start %s: %w", n.name, err)
		}
		n.logf, out = f, io.MultiWriter(n.tail, f)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		if n.logf != nil {
			n.logf.Close()
		}
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	done := make(chan struct{})
	logf := n.logf
	n.cmd, n.done = cmd, done
	go func() { // owned by the node: kill and stop wait for done
		err := cmd.Wait()
		if logf != nil {
			logf.Close()
		}
		n.logger.Debug("child exited", "node", n.name, "err", err)
		close(done)
	}()
	return nil
}

// pid is the running process's id, or 0.
func (n *node) pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

func (n *node) exited() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.done == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return n.done
}

// waitReady polls readiness until it passes, the process exits, or ctx ends.
func (n *node) waitReady(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if n.ready(ctx) {
			return nil
		}
		select {
		case <-n.exited():
			return fmt.Errorf("%s exited: %s", n.name, n.lastLine())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", n.name, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

func (n *node) ready(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if !n.http {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", n.addr())
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.addr()+"/health/ready", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// signal sends sig to a running process without waiting.
func (n *node) signal(sig syscall.Signal) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return
	}
	select {
	case <-n.done:
	default:
		n.cmd.Process.Signal(sig)
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (n *node) kill() { n.signalWait(syscall.SIGKILL, 0) }

// stop sends SIGTERM, waits up to grace, then kills.
func (n *node) stop(grace time.Duration) { n.signalWait(syscall.SIGTERM, grace) }

func (n *node) signalWait(sig syscall.Signal, grace time.Duration) {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	cmd.Process.Signal(sig)
	if sig != syscall.SIGKILL {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-done:
			return
		case <-t.C:
			n.logger.Warn("child ignored SIGTERM, killing", "node", n.name, "grace", grace)
			cmd.Process.Kill()
		}
	}
	<-done
}

// lastLine is the last non-empty line the process printed, for one-line
// reasons in the report.
func (n *node) lastLine() string {
	if n.tail == nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(n.tail.String()), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			if len(l) > 200 {
				l = l[:200] + "..."
			}
			return l
		}
	}
	return "(no output)"
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// procTicks returns utime+stime of pid in clock ticks from /proc/<pid>/stat.
func procTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	// The command name may hold spaces and parentheses; fields start after
	// the last ')'. utime and stime are fields 14 and 15 of the whole line,
	// so 12 and 13 counting from the state field.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse stat of %d: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("parse stat of %d: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parse stat of %d: %w", pid, err)
	}
	return ut + st, nil
}

// procWriteBytes returns write_bytes of pid from /proc/<pid>/io: the bytes
// the process caused to be sent to storage, counted as it dirties page-cache
// pages, so a page written twice before writeback counts once.
func procWriteBytes(pid int) (int64, error) {
	v, err := procField(pid, "io", "write_bytes:")
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse write_bytes of %d: %w", pid, err)
	}
	return n, nil
}

// procField returns the rest of the first line of /proc/<pid>/<file> that
// starts with key, trimmed.
func procField(pid int, file, key string) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return "", fmt.Errorf("read %s of %d: %w", file, pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("%s of %d: no %s", file, pid, strings.TrimSuffix(key, ":"))
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times; Linux fixes it
// at 100 for user space whatever the kernel's HZ.
const clockTicks = 100

// procRSS returns VmRSS of pid in bytes from /proc/<pid>/status.
func procRSS(pid int) (int64, error) {
	v, err := procField(pid, "status", "VmRSS:")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(v)
	if len(f) != 2 || f[1] != "kB" {
		return 0, fmt.Errorf("parse VmRSS of %d: %q", pid, v)
	}
	kb, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse VmRSS of %d: %w", pid, err)
	}
	return kb << 10, nil
}

// freePort finds a TCP port that is free on every host at once.
func freePort(hosts ...string) (int, error) {
	for attempt := 0; attempt < 50; attempt++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(hosts[0], "0"))
		if err != nil {
			return 0, fmt.Errorf("free port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ok := true
		var held []net.Listener
		for _, h := range hosts[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			held = append(held, l)
		}
		for _, l := range held {
			l.Close()
		}
		ln.Close()
		if ok {
			return port, nil
		}
	}
	return 0, errors.New("free port: none free on all hosts after 50 tries")
}

// metric reads one sample, named with its labels as /metrics prints it.
func (n *node) metric(ctx context.Context, name string) (float64, bool) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.addr()+"/metrics", nil)
	if err != nil {
		return 0, false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}
