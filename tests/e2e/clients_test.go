//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chronik-stream/chronik/tests/framework"
)

func needTool(t *testing.T, name string, args ...string) {
	t.Helper()
	if err := exec.Command(name, args...).Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI (make test-deps installs it): %v", name, err)
		}
		t.Skipf("%s not available: %v", name, err)
	}
}

func run(t *testing.T, ctx context.Context, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestKcat(t *testing.T) {
	needTool(t, "kcat", "-V")
	srv := framework.StartStandalone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var lines []string
	for i := 0; i < 100; i++ {
		lines = append(lines, fmt.Sprintf("kcat-%d", i))
	}
	// -P auto-creates the topic through Metadata.
	run(t, ctx, strings.Join(lines, "\n")+"\n", "kcat", "-b", srv.Addr(), "-P", "-t", "kcat-topic", "-X", "acks=all")
	out := run(t, ctx, "", "kcat", "-b", srv.Addr(), "-C", "-t", "kcat-topic", "-o", "beginning", "-e", "-q")
	got := strings.Fields(out)
	if len(got) != len(lines) {
		t.Fatalf("kcat consumed %d records, want %d:\n%s", len(got), len(lines), out)
	}
	for i := range got {
		if got[i] != lines[i] {
			t.Fatalf("record %d = %q, want %q", i, got[i], lines[i])
		}
	}
	meta := run(t, ctx, "", "kcat", "-b", srv.Addr(), "-L")
	if !strings.Contains(meta, `topic "kcat-topic" with 1 partitions`) || !strings.Contains(meta, "1 brokers") {
		t.Fatalf("kcat -L:\n%s", meta)
	}
}

func TestConfluentKafkaPython(t *testing.T) {
	needTool(t, "/usr/bin/python3", "-c", "import confluent_kafka")
	srv := framework.StartStandalone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out := run(t, ctx, "", "/usr/bin/python3", "testdata/confluent_basic.py", srv.Addr())
	if !strings.Contains(out, "OK") {
		t.Fatalf("python client:\n%s", out)
	}
	t.Log(out)
}

// kafkajs, as it ships, against a three-node cluster: a replicated topic,
// idempotent acks=all produce, a consumer group that commits, and a second
// session that resumes after the commit (testdata/kafkajs/basic.js).
func TestKafkaJS(t *testing.T) {
	needTool(t, "node", "-e", "require('./testdata/kafkajs/node_modules/kafkajs')")
	c := framework.StartCluster(t, framework.ClusterOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "testdata/kafkajs/basic.js", strings.Join(c.Addrs(), ","), "3")
	cmd.Env = append(os.Environ(), "KAFKAJS_NO_PARTITIONER_WARNING=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK 360") {
		t.Fatalf("kafkajs: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(string(out)))
}
