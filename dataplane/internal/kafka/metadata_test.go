package kafka

import (
	"testing"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

// TestMetadataUnelectedEpochIsUnknown checks that in cluster mode a
// partition whose first election is not reported yet is answered with
// leader epoch -1, not the 0 it was created with: a client that pinned 0
// would be fenced by the elected leader and stall until its next metadata
// refresh. Standalone epochs, and elected ones, pass through.
func TestMetadataUnelectedEpochIsUnknown(t *testing.T) {
	st := &metadata.State{Brokers: map[int32]*metadata.Broker{1: {ID: 1, Alive: true}}}
	topic := &metadata.Topic{Name: "t", Partitions: []metadata.Partition{
		{ID: 0, Leader: 1, LeaderEpoch: 0, Replicas: []int32{1}, ISR: []int32{1}},
		{ID: 1, Leader: 1, LeaderEpoch: 3, Replicas: []int32{1}, ISR: []int32{1}},
	}}
	for _, tc := range []struct {
		elected bool
		want    []int32
	}{
		{elected: true, want: []int32{-1, 3}},
		{elected: false, want: []int32{0, 3}},
	} {
		b := &Broker{NodeID: 1, ElectedEpochs: tc.elected}
		mt := b.metadataTopic(st, topic)
		for i, p := range mt.Partitions {
			if p.LeaderEpoch != tc.want[i] || p.Leader != 1 || p.ErrorCode != 0 {
				t.Errorf("elected epochs %v, partition %d: leader %d epoch %d error %d, want leader 1 epoch %d",
					tc.elected, i, p.Leader, p.LeaderEpoch, p.ErrorCode, tc.want[i])
			}
		}
	}
}
