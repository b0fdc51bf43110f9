package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1"
)

// The deployment guide's "Describe topic replication" output, verbatim.
const guideDescribe = `Topic: orders  PartitionCount: 3  ReplicationFactor: 3
  Partition: 0  Leader: 1  Replicas: 1,2,3  Isr: 1,2,3
  Partition: 1  Leader: 2  Replicas: 2,3,1  Isr: 2,3,1
  Partition: 2  Leader: 3  Replicas: 3,1,2  Isr: 3,1,2
`

func TestTopicDescribeGuideForm(t *testing.T) {
	topic := topicInfo{Topic: "orders", Partitions: []partitionInfo{
		{Partition: 0, Leader: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}},
		{Partition: 1, Leader: 2, Replicas: []int32{2, 3, 1}, ISR: []int32{2, 3, 1}},
		{Partition: 2, Leader: 3, Replicas: []int32{3, 1, 2}, ISR: []int32{3, 1, 2}},
	}}
	var b bytes.Buffer
	if err := writeTopicDescribe(&b, []topicInfo{topic}); err != nil {
		t.Fatal(err)
	}
	if b.String() != guideDescribe {
		t.Errorf("got\n%s\nwant the guide's\n%s", b.String(), guideDescribe)
	}

	// No leader reads as Kafka's tool writes it.
	b.Reset()
	topic.Partitions = topic.Partitions[:1]
	topic.Partitions[0].Leader = -1
	topic.Partitions[0].ISR = []int32{}
	if err := writeTopicDescribe(&b, []topicInfo{topic}); err != nil {
		t.Fatal(err)
	}
	if want := "  Partition: 0  Leader: none  Replicas: 1,2,3  Isr: \n"; !strings.HasSuffix(b.String(), want) {
		t.Errorf("offline partition: %q", b.String())
	}
}

func TestClusterProblems(t *testing.T) {
	cases := []struct {
		name   string
		change func(*adminv1.GetClusterStatusResponse)
		want   []string
	}{
		{"healthy", func(*adminv1.GetClusterStatusResponse) {}, nil},
		{"node down", func(st *adminv1.GetClusterStatusResponse) { st.Nodes[1].Alive = false },
			[]string{"node 2 is down"}},
		{"no meta leader", func(st *adminv1.GetClusterStatusResponse) { st.Meta.LeaderId = 0 },
			[]string{"__meta has no leader"}},
		{"no quorum", func(st *adminv1.GetClusterStatusResponse) { st.Meta.VotersAlive = 1 },
			[]string{"__meta has no quorum: 1 of 3 voters alive, 2 needed"}},
		{"partitions", func(st *adminv1.GetClusterStatusResponse) {
			st.Partitions = &adminv1.PartitionSummary{Total: 9, UnderReplicated: 2, Offline: 1, UnderMinIsr: 1}
		}, []string{"1 partition offline", "2 partitions under-replicated", "1 partition below min.insync.replicas"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := healthyCluster()
			st.Partitions = &adminv1.PartitionSummary{Total: 4}
			c.change(st)
			if got := clusterProblems(st); !slices.Equal(got, c.want) {
				t.Errorf("problems %q, want %q", got, c.want)
			}
		})
	}
}

func TestDisplayHost(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:54321": "127.0.0.1", "[::1]:9092": "::1", "/10.1.2.3": "/10.1.2.3", "": "",
	} {
		if got := displayHost(in); got != want {
			t.Errorf("displayHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseDatetime(t *testing.T) {
	utc := time.Date(2025, 3, 1, 12, 30, 0, 0, time.UTC)
	local := time.Date(2025, 3, 1, 12, 30, 0, 0, time.Local)
	for in, want := range map[string]time.Time{
		"2025-03-01T12:30:00Z":      utc,
		"2025-03-01T13:30:00+01:00": utc,
		"2025-03-01T12:30:00":       local,
		"2025-03-01T12:30:00.250":   local.Add(250 * time.Millisecond),
	} {
		got, err := parseDatetime(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseDatetime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseDatetime("yesterday"); err == nil {
		t.Error("parseDatetime accepted \"yesterday\"")
	}
}

// FuzzClusterStatus feeds arbitrary server responses through the status
// forms: whatever a broken or hostile server sends, chronikctl must print
// something and agree with itself about health.
func FuzzClusterStatus(f *testing.F) {
	for _, st := range []*adminv1.GetClusterStatusResponse{healthyCluster(), degradedCluster(), {}} {
		b, err := proto.Marshal(st)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, true)
	}
	f.Add([]byte{0x12, 0x02, 0x08, 0x00}, false)
	f.Fuzz(func(t *testing.T, data []byte, partitions bool) {
		st := &adminv1.GetClusterStatusResponse{}
		if err := proto.Unmarshal(data, st); err != nil {
			return
		}
		var b bytes.Buffer
		if err := writeClusterStatus(&b, st, partitions); err != nil {
			t.Fatal(err)
		}
		healthy := len(clusterProblems(st)) == 0
		if got := strings.Contains(b.String(), "Status: HEALTHY"); got != healthy {
			t.Errorf("table says healthy=%v, problems say %v", got, healthy)
		}
		b.Reset()
		if err := writeClusterStatusJSON(&b, st); err != nil {
			t.Fatal(err)
		}
		var doc clusterStatusJSON
		if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
			t.Fatalf("--json output is not JSON: %v", err)
		}
		if doc.Healthy != healthy {
			t.Errorf("json healthy=%v, problems say %v", doc.Healthy, healthy)
		}
	})
}

// FuzzParseDatetime checks that any accepted --to-datetime names one
// instant that survives a round trip through RFC 3339.
func FuzzParseDatetime(f *testing.F) {
	for _, s := range []string{"2025-03-01T12:30:00Z", "2025-03-01T12:30:00", "2025-03-01T12:30:00.250", "x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		at, err := parseDatetime(s)
		if err != nil {
			return
		}
		back, err := time.Parse(time.RFC3339Nano, at.Format(time.RFC3339Nano))
		if err != nil || !back.Equal(at) {
			t.Errorf("%q parsed to %v, which does not round-trip: %v %v", s, at, back, err)
		}
	})
}

// FuzzInterspersed checks that splitting flags from positional arguments
// never panics and keeps every non-flag argument in order.
func FuzzInterspersed(f *testing.F) {
	for _, s := range []string{"3 --json", "--dry-run 3", "3 --interval 5ms --wait", "-- --json", "3 --interval", "3 --bogus"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := append([]string{"chronikctl", "node", "decommission"}, strings.Fields(line)...)
		var got []string
		app := newApp(&bytes.Buffer{}, &bytes.Buffer{})
		for _, c := range app.Commands {
			if c.Name != "node" {
				continue
			}
			for _, sub := range c.Subcommands {
				if sub.Name == "decommission" {
					sub.Action = func(cc *cli.Context) error {
						var err error
						got, err = interspersed(cc)
						return err
					}
				}
			}
		}
		if err := app.Run(args); err != nil {
			return
		}
		for _, a := range got {
			if strings.HasPrefix(a, "-") && len(a) > 1 && !slices.Contains(strings.Fields(line), "--") {
				t.Errorf("flag-like %q left among positional arguments %q", a, got)
			}
		}
	})
}
