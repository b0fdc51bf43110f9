package replica

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/chronik-stream/chronik/controlplane/metadata"
	"github.com/chronik-stream/chronik/dataplane/internal/partition"
)

// TestReconcileOpensInOrder checks that new replicas open in topic and
// partition order whatever the map order, so that every node starts the
// replicas of a partition at about the same time; and that with several
// opening at once every replica opens, once.
func TestReconcileOpensInOrder(t *testing.T) {
	var mu sync.Mutex
	var opened []string
	m := New(Config{
		Dir:    t.TempDir(),
		NodeID: 1,
		Logger: testLogger(t, "manager"),
		Attach: func(p *partition.Partition, _ *metadata.Topic) (func(), error) {
			mu.Lock()
			defer mu.Unlock()
			opened = append(opened, fmt.Sprintf("%s/%d", p.Topic, p.Index))
			return func() {}, nil
		},
	})
	t.Cleanup(m.closeAll)
	st := &metadata.State{Topics: map[string]*metadata.Topic{}}
	var want []string
	add := func(names ...string) {
		for _, name := range names {
			tp := &metadata.Topic{Name: name, ID: [16]byte{name[0]}}
			for i := range int32(12) {
				tp.Partitions = append(tp.Partitions, metadata.Partition{ID: i, Replicas: []int32{1, 2, 3}})
				want = append(want, fmt.Sprintf("%s/%d", name, i))
			}
			// A partition this node does not host is not opened.
			tp.Partitions = append(tp.Partitions, metadata.Partition{ID: 12, Replicas: []int32{2, 3}})
			st.Topics[name] = tp
		}
	}

	m.openers = 1
	add("a", "b", "c")
	if err := m.reconcile(st); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(opened, want) {
		t.Fatalf("opened %v, want %v", opened, want)
	}

	m.openers = openWorkers
	opened = nil
	want = nil
	add("d", "e", "f")
	if err := m.reconcile(st); err != nil {
		t.Fatal(err)
	}
	slices.Sort(opened)
	slices.Sort(want)
	if !slices.Equal(opened, want) {
		t.Fatalf("opened %v, want %v", opened, want)
	}
}
