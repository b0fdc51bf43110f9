package controller

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

// FuzzDecodeState feeds arbitrary bytes to the decoders of what crosses
// the wire or comes off disk: metadata images (meta.watch), snapshots and
// RPC messages. They must fail cleanly, and whatever they accept must be
// safe to read.
func FuzzDecodeState(f *testing.F) {
	st := metadata.NewState("c")
	st.Index = 7
	st.Brokers[1] = &metadata.Broker{ID: 1, Host: "h", Port: 9092, Alive: true}
	st.Topics["t"] = &metadata.Topic{Name: "t", Partitions: []metadata.Partition{{ID: 0, Replicas: []int32{1}, ISR: []int32{1}}}}
	img, _ := json.Marshal(st)
	f.Add(img)
	snap, _ := json.Marshal(snapshotImage{State: st, Nonces: []seenNonce{{Nonce: make([]byte, nonceLen), Outcome: &outcome{Index: 3, Code: "topic_exists", Msg: "x"}}}})
	f.Add(snap)
	f.Add(encode(pingResponse{NodeID: 1, Ready: true, Term: 2, leaderRef: leaderRef{LeaderID: 1, LeaderAddr: "a:1"}}))
	f.Add(encode(proposeRequest{Nonce: make([]byte, nonceLen), Command: allocCmd(1).Encode()}))
	f.Add(encode(proposeResponse{Outcome: &outcome{Index: 9}}))
	f.Add(encode(retireRequest{From: 1, NodeID: 3}))
	f.Add(encode(watchResponse{State: img}))
	f.Add([]byte(`{"brokers":{"1":null}}`))
	f.Add([]byte(`{"topics":{"t":null}}`))
	f.Add([]byte(`{"state":{"index":1},"nonces":[{"nonce":"AA==","outcome":null}]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		if st, err := decodeState(b); err == nil {
			readImage(st)
		}
		if img, err := decodeSnapshot(b); err == nil {
			readImage(img.State)
			g := newFSM()
			if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
				t.Fatalf("snapshot decoded but did not restore: %v", err)
			}
			g.Apply(logEntry(img.State.Index+1, allocCmd(1), 1))
		}
		var (
			ping pingResponse
			prop proposeRequest
			resp proposeResponse
			hb   heartbeatResponse
			w    watchResponse
			tr   transferResponse
			ret  retireRequest
		)
		_ = decode("ping", b, &ping)
		_ = decode("propose", b, &prop)
		if decode("propose response", b, &resp) == nil && resp.Outcome != nil {
			_ = resp.Outcome.err()
		}
		_ = decode("heartbeat", b, &hb)
		if decode("watch", b, &w) == nil && len(w.State) > 0 {
			if st, err := decodeState(w.State); err == nil {
				readImage(st)
			}
		}
		_ = decode("transfer", b, &tr)
		_ = decode("retire", b, &ret)
	})
}

// readImage walks an image the way a broker would.
func readImage(st *metadata.State) {
	_ = st.LiveBrokers()
	for _, t := range st.SortedTopics() {
		for i := range t.Partitions {
			_ = st.Partition(t.Name, int32(i))
		}
	}
	_ = st.Clone()
}
