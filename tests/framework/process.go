// Package framework starts real chronik-server processes for end-to-end
// tests and waits on their health endpoints.
package framework

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ServerBin is the chronik-server binary: $CHRONIK_SERVER_BIN, or built once
// from the workspace into a temporary directory.
func ServerBin(t testing.TB) string { return serverBin.path(t) }

var serverBin = &workspaceBin{env: "CHRONIK_SERVER_BIN", pkg: "./dataplane/cmd/chronik-server", name: "chronik-server"}

// workspaceBin is a command of the workspace: the binary named by env, or
// pkg built once per test process.
type workspaceBin struct {
	env, pkg, name string

	once  sync.Once
	built string
	err   error
}

func (b *workspaceBin) path(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(b.env); p != "" {
		return p
	}
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", b.name+"-bin")
		if err != nil {
			b.err = err
			return
		}
		b.built = filepath.Join(dir, b.name)
		_, file, _, _ := runtime.Caller(0)
		cmd := exec.Command("go", "build", "-o", b.built, b.pkg)
		cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("build %s: %v\n%s", b.name, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.built
}

// FreePort returns a TCP port free on host right now.
func FreePort(t testing.TB, host string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Server is one chronik-server process.
type Server struct {
	t       testing.TB
	Host    string
	Port    int
	DataDir string
	Env     []string
	Args    []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	logs *syncBuffer
}

// StartStandalone starts a single-node server on 127.0.0.1 with a fresh
// data directory and waits until it is ready.
func StartStandalone(t testing.TB, env ...string) *Server {
	t.Helper()
	s := &Server{t: t, Host: "127.0.0.1", DataDir: t.TempDir(), Env: env, Args: []string{"standalone"}}
	s.Port = FreePort(t, s.Host)
	t.Cleanup(s.Kill)
	s.Start()
	return s
}

// Addr is the Kafka address host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Start launches the process and waits for /health/ready.
func (s *Server) Start() {
	s.t.Helper()
	s.Launch()
	s.WaitReady(30 * time.Second)
}

// Launch starts the process without waiting for it to be ready.
func (s *Server) Launch() {
	s.t.Helper()
	s.mu.Lock()
	cmd := exec.Command(ServerBin(s.t), s.Args...)
	cmd.Env = append(os.Environ(),
		"CHRONIK_BIND_ADDR="+s.Host,
		"CHRONIK_ADVERTISED_ADDR="+s.Host,
		"CHRONIK_KAFKA_PORT="+strconv.Itoa(s.Port),
		"CHRONIK_ADVERTISED_PORT="+strconv.Itoa(s.Port),
		"CHRONIK_DATA_DIR="+s.DataDir,
		"CHRONIK_LOG_LEVEL=info",
	)
	cmd.Env = append(cmd.Env, s.Env...)
	if s.logs == nil {
		s.logs = &syncBuffer{}
		s.t.Cleanup(s.reportOnFailure)
	}
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.t.Fatalf("start chronik-server: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	done := s.done
	go func() { cmd.Wait(); close(done) }()
	s.mu.Unlock()
}

// reportOnFailure prints the server's output when the test failed. A
// server still running is first sent SIGQUIT, so that the output ends
// with every goroutine's stack: a stall is then diagnosable from the
// test log alone.
func (s *Server) reportOnFailure() {
	if !s.t.Failed() {
		return
	}
	if s.Running() {
		s.signal(syscall.SIGQUIT)
	}
	s.t.Logf("server %s logs:\n%s", s.Addr(), s.logs.String())
}

// Running reports whether the process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// WaitReady polls /health/ready until it answers 200 or the deadline.
func (s *Server) WaitReady(timeout time.Duration) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	url := "http://" + s.Addr() + "/health/ready"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-s.done:
			s.t.Fatalf("server exited before ready:\n%s", s.logs.String())
		case <-ctx.Done():
			s.t.Fatalf("server not ready after %v:\n%s", timeout, s.logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

// Stop sends SIGTERM and waits; it returns the exit code.
func (s *Server) Stop() int {
	s.signal(syscall.SIGTERM)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.ProcessState == nil {
		return -1
	}
	return s.cmd.ProcessState.ExitCode()
}

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		s.t.Errorf("server did not exit within 30s of %v", sig)
	}
}

// Logs returns everything the process printed so far.
func (s *Server) Logs() string { return s.logs.String() }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Eventually polls cond until it is true or the timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
