//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-stream/chronik/tests/framework"
)

func client(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.RetryTimeout(20 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// consumeN reads n records of topic from the start with a direct consumer.
func consumeN(t *testing.T, addr, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx := ctxT(t, 30*time.Second)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records of %s: %v", len(out), n, topic, err)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Logf("fetch %s/%d: %v", tp, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

func TestFranzGoEndToEnd(t *testing.T) {
	srv := framework.StartStandalone(t)
	adm := kadm.NewClient(client(t, srv.Addr()))
	ctx := ctxT(t, 60*time.Second)

	if _, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"retention.ms": kadm.StringPtr("3600000")}, "e2e"); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	want := map[string]bool{}
	for name, codec := range codecs {
		pr := client(t, srv.Addr(), kgo.ProducerBatchCompression(codec), kgo.RequiredAcks(kgo.AllISRAcks()))
		for i := 0; i < 100; i++ {
			v := fmt.Sprintf("%s-%03d-%s", name, i, strings.Repeat("x", i))
			want[v] = true
			pr.Produce(ctx, &kgo.Record{Topic: "e2e", Key: []byte(name), Value: []byte(v)}, nil)
		}
		if err := pr.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		// Produce synchronously to see errors.
		if err := pr.ProduceSync(ctx, &kgo.Record{Topic: "e2e", Key: []byte(name), Value: []byte(name + "-sync")}).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", name, err)
		}
		want[name+"-sync"] = true
	}
	recs := consumeN(t, srv.Addr(), "e2e", len(want))
	for _, r := range recs {
		if !want[string(r.Value)] {
			t.Fatalf("unexpected or duplicate record %q", r.Value)
		}
		delete(want, string(r.Value))
	}
	if len(want) != 0 {
		t.Fatalf("%d records missing", len(want))
	}

	// List offsets: earliest 0, latest = sum of records per partition.
	ends, err := adm.ListEndOffsets(ctx, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != int64(len(recs)) {
		t.Fatalf("end offsets sum %d, want %d", total, len(recs))
	}
	starts, _ := adm.ListStartOffsets(ctx, "e2e")
	starts.Each(func(o kadm.ListedOffset) {
		if o.Offset != 0 || o.Err != nil {
			t.Fatalf("start offset %+v", o)
		}
	})

	// Configs: describe shows the override; alter changes it.
	rc, err := adm.DescribeTopicConfigs(ctx, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	c, err := rc.On("e2e", nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, kv := range c.Configs {
		if kv.Key == "retention.ms" {
			found = kv.MaybeValue() == "3600000"
		}
	}
	if !found {
		t.Fatalf("retention.ms override not described: %+v", c.Configs)
	}
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "segment.bytes", Value: kadm.StringPtr("1048576")}}, "e2e"); err != nil {
		t.Fatal(err)
	}
	res, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "segment.bytes", Value: kadm.StringPtr("nope")}}, "e2e")
	if err == nil {
		if r, _ := res.On("e2e", nil); r.Err == nil {
			t.Fatal("invalid config value accepted")
		}
	}

	// Delete records moves the start offset of partition 0.
	p0 := ends["e2e"][0].Offset
	if p0 > 0 {
		del, err := adm.DeleteRecords(ctx, kadm.Offsets{"e2e": {0: {At: p0}}})
		if err != nil {
			t.Fatal(err)
		}
		if e := del.Error(); e != nil {
			t.Fatal(e)
		}
		starts, _ = adm.ListStartOffsets(ctx, "e2e")
		if got := starts["e2e"][0].Offset; got != p0 {
			t.Fatalf("start offset after delete records %d, want %d", got, p0)
		}
	}

	// Metrics and health share the Kafka port.
	resp, err := http.Get("http://" + srv.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`kafka_requests_total{api="Produce"}`, "kafka_request_duration_seconds_bucket", "kafka_bytes_in_total"} {
		if !bytes.Contains(body, []byte(m)) {
			t.Fatalf("metrics lack %s", m)
		}
	}
}

// TestRestartKeepsTopicsAndData stops the server gracefully and checks that
// topics, configs and records come back.
func TestRestartKeepsTopicsAndData(t *testing.T) {
	srv := framework.StartStandalone(t)
	ctx := ctxT(t, 60*time.Second)
	adm := kadm.NewClient(client(t, srv.Addr()))
	if _, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("delete")}, "keep"); err != nil {
		t.Fatal(err)
	}
	pr := client(t, srv.Addr())
	for i := 0; i < 50; i++ {
		if err := pr.ProduceSync(ctx, &kgo.Record{Topic: "keep", Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if code := srv.Stop(); code != 0 {
		t.Fatalf("SIGTERM exit code %d", code)
	}
	srv.Start()
	if n := len(consumeN(t, srv.Addr(), "keep", 50)); n != 50 {
		t.Fatalf("read %d records after restart", n)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
