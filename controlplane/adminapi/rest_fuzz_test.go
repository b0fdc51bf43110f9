package adminapi

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseTransferBody feeds arbitrary bodies to the decoder of POST
// /admin/transfer-leader: it must never panic, must reject with
// ErrInvalidRequest only, and must produce exactly one well-formed target.
func FuzzParseTransferBody(f *testing.F) {
	for _, seed := range []string{
		"",
		"  \n",
		`{}`,
		`{"meta":true}`,
		`{"meta":true,"to":2}`,
		`{"topic":"orders","partition":1}`,
		`{"topic":"orders","partition":1,"to":3,"timeout_ms":5000}`,
		`{"to":4}`,
		`{"topic":"orders"}`,
		`{"partition":0}`,
		`{"meta":true,"topic":"t","partition":0}`,
		`{"topic":"","partition":0}`,
		`{"to":-1}`,
		`{"timeout_ms":-5}`,
		`{"bogus":true}`,
		`{"meta":true}{"meta":false}`,
		`[1,2,3]`,
		`null`,
		`{"partition":99999999999}`,
		`{bad`,
		"\x00\xff",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		target, timeout, err := parseTransferBody(strings.NewReader(body), 7)
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("%q: error %v is not an invalid request", body, err)
			}
			return
		}
		kinds := 0
		if target.meta {
			kinds++
		}
		if target.partition != nil {
			kinds++
			if target.partition.GetTopic() == "" {
				t.Fatalf("%q: empty topic accepted", body)
			}
		}
		if target.isNode {
			kinds++
			if target.node != 7 {
				t.Fatalf("%q: node-wide move of node %d, want the receiving node", body, target.node)
			}
		}
		if kinds != 1 {
			t.Fatalf("%q: %d targets", body, kinds)
		}
		if target.to < 0 || timeout < 0 {
			t.Fatalf("%q: to %d, timeout %s", body, target.to, timeout)
		}
	})
}
