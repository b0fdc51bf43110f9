package adminapi

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	adminv1 "github.com/chronik-stream/chronik/proto/gen/chronik/admin/v1"
)

// post sends a REST form to addr and decodes the JSON answer into out.
func post(t *testing.T, addr, path, body string, out any) int {
	t.Helper()
	return do(t, http.MethodPost, addr, path, body, out)
}

func do(t *testing.T, method, addr, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: content type %q", method, path, ct)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s %s: answer %q: %v", method, path, b, err)
	}
	return resp.StatusCode
}

type restError struct {
	Error string `json:"error"`
}

func TestRESTTransferLeader(t *testing.T) {
	c, _, _ := threeNodes(t)
	c.mu.Lock()
	addr1, addr2 := c.addrs[1], c.addrs[2]
	c.mu.Unlock()

	// The rolling restart's form: no body, everything node 1 leads moves.
	var all transferAnswer
	if code := post(t, addr1, "/admin/transfer-leader", "", &all); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if all.NodeID != 1 || len(all.Changes) != 4 || all.Changes[0].Topic != "__meta" {
		t.Fatalf("answer %+v", all)
	}
	for _, ch := range all.Changes {
		if ch.PreviousLeader != 1 || ch.NewLeader == 1 || ch.Term == 0 {
			t.Errorf("change %+v", ch)
		}
	}
	if leaders, _ := leaderCounts(c.store.State()); leaders[1] != 0 {
		t.Errorf("node 1 still leads %d partitions", leaders[1])
	}

	var one transferAnswer
	if code := post(t, addr2, "/admin/transfer-leader", `{"topic":"orders","partition":0,"to":1}`, &one); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if one.NodeID != 0 || len(one.Changes) != 1 || one.Changes[0] != (restChange{Topic: "orders", Partition: 0, PreviousLeader: 2, NewLeader: 1, Term: 3}) {
		t.Errorf("answer %+v", one)
	}
	meta := c.node(1).Meta().LeaderID
	var m transferAnswer
	if code := post(t, addr2, "/admin/transfer-leader", `{"meta":true,"to":1,"timeout_ms":2000}`, &m); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if len(m.Changes) != 1 || m.Changes[0].PreviousLeader != meta || m.Changes[0].NewLeader != 1 {
		t.Errorf("answer %+v", m)
	}

	for _, tc := range []struct {
		body string
		code int
		msg  string
	}{
		{`{bad`, http.StatusBadRequest, "not the expected JSON object"},
		{`{"topic":"orders"}`, http.StatusBadRequest, "topic and partition go together"},
		{`{"meta":true,"topic":"orders","partition":0}`, http.StatusBadRequest, "either meta or topic"},
		{`{"bogus":1}`, http.StatusBadRequest, `unknown field "bogus"`},
		{`{"meta":true} {}`, http.StatusBadRequest, "data after its JSON object"},
		{`{"topic":"nope","partition":0}`, http.StatusNotFound, "unknown topic nope"},
		{`{"topic":"payments","partition":1,"to":1}`, http.StatusConflict, "node 1 is not a replica of payments/1"},
		{`{"to":9}`, http.StatusNotFound, "unknown node 9"},
	} {
		var e restError
		if code := post(t, addr1, "/admin/transfer-leader", tc.body, &e); code != tc.code || !strings.Contains(e.Error, tc.msg) {
			t.Errorf("%s: %d %q, want %d %q", tc.body, code, e.Error, tc.code, tc.msg)
		}
	}
	var e restError
	if code := do(t, http.MethodGet, addr1, "/admin/transfer-leader", "", &e); code != http.StatusMethodNotAllowed || !strings.Contains(e.Error, "takes POST") {
		t.Errorf("GET: %d %q", code, e.Error)
	}
	if code := post(t, addr1, "/admin/nope", "", &e); code != http.StatusNotFound || !strings.Contains(e.Error, "no admin endpoint /admin/nope") {
		t.Errorf("unknown path: %d %q", code, e.Error)
	}
}

func TestRESTTransferLeaderTimesOut(t *testing.T) {
	c, _, _ := threeNodes(t)
	c.mu.Lock()
	c.stuck = true
	addr := c.addrs[1]
	c.mu.Unlock()
	var e restError
	start := time.Now()
	code := post(t, addr, "/admin/transfer-leader", `{"topic":"orders","partition":0,"timeout_ms":100}`, &e)
	if code != http.StatusGatewayTimeout || !strings.Contains(e.Error, "did not move") {
		t.Errorf("%d %q", code, e.Error)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("the timeout was not applied")
	}
}

func TestRESTRebalance(t *testing.T) {
	c := newFakeCluster(t, 3)
	addFourthNode(t, c, c.node(1))
	_, addr2, _ := serve(t, c, 2, startService(t, c.node(2), nil))
	c.mu.Lock()
	addr1 := c.addrs[1]
	gate := make(chan struct{})
	c.addGate = gate
	c.mu.Unlock()

	var dry rebalanceAnswer
	if code := post(t, addr1, "/admin/rebalance", `{"dry_run":true}`, &dry); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if !dry.DryRun || dry.RebalanceID != "" || len(dry.Moves) == 0 || dry.Moves[0].AddReplica != 4 {
		t.Fatalf("dry run %+v", dry)
	}
	// Through node 2, which forwards to the controller, with no body: the
	// guide's form.
	var started rebalanceAnswer
	if code := post(t, addr2, "/admin/rebalance", "", &started); code != http.StatusAccepted {
		t.Fatalf("status %d", code)
	}
	if started.DryRun || started.RebalanceID == "" || len(started.Moves) != len(dry.Moves) {
		t.Fatalf("started %+v", started)
	}
	var e restError
	if code := post(t, addr1, "/admin/rebalance", "", &e); code != http.StatusConflict ||
		!strings.Contains(e.Error, "a rebalance is already running (id "+started.RebalanceID) {
		t.Errorf("second start: %d %q", code, e.Error)
	}
	if code := post(t, addr1, "/admin/rebalance", `{"dry_run":"yes"}`, &e); code != http.StatusBadRequest {
		t.Errorf("bad body: %d %q", code, e.Error)
	}
	close(gate)
	if st := waitRebalance(t, clientFor(addr1), started.RebalanceID); st.GetState() != adminv1.RebalanceState_REBALANCE_STATE_DONE {
		t.Errorf("rebalance %v", st)
	}
	c.assertInvariants(t)
}
