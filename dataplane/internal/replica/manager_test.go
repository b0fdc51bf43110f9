package replica

import (
	"fmt"
	"slices"
	"testing"

	"github.com/chronik-stream/chronik/controlplane/metadata"
	"github.com/chronik-stream/chronik/dataplane/internal/partition"
)

// TestReconcileOpensInOrder checks that new replicas open sorted by topic
// and partition, whatever the map order: every node then starts the
// replicas of a partition at about the same time.
func TestReconcileOpensInOrder(t *testing.T) {
	var opened []string
	m := New(Config{
		Dir:    t.TempDir(),
		NodeID: 1,
		Logger: testLogger(t, "manager"),
		Attach: func(p *partition.Partition, _ *metadata.Topic) (func(), error) {
			opened = append(opened, fmt.Sprintf("%s/%d", p.Topic, p.Index))
			return func() {}, nil
		},
	})
	t.Cleanup(m.closeAll)
	st := &metadata.State{Topics: map[string]*metadata.Topic{}}
	var want []string
	for _, name := range []string{"a", "b", "c"} {
		tp := &metadata.Topic{Name: name, ID: [16]byte{name[0]}}
		for i := range int32(12) {
			tp.Partitions = append(tp.Partitions, metadata.Partition{ID: i, Replicas: []int32{1, 2, 3}})
			want = append(want, fmt.Sprintf("%s/%d", name, i))
		}
		// A partition this node does not host is not opened.
		tp.Partitions = append(tp.Partitions, metadata.Partition{ID: 12, Replicas: []int32{2, 3}})
		st.Topics[name] = tp
	}
	if err := m.reconcile(st); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(opened, want) {
		t.Fatalf("opened %v, want %v", opened, want)
	}
}
