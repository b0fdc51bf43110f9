package framework

import (
	"testing"
	"time"
)

func TestCtlDeadline(t *testing.T) {
	for _, c := range []struct {
		args []string
		want time.Duration
	}{
		{[]string{"cluster", "status"}, time.Minute},
		{[]string{"node", "drain", "2", "--timeout", "150s"}, 3 * time.Minute},
		{[]string{"node", "drain", "2", "--timeout=150s"}, 3 * time.Minute},
		{[]string{"node", "drain", "2", "--timeout=10s"}, time.Minute},
		{[]string{"node", "drain", "2", "--timeout"}, time.Minute},
		{[]string{"node", "drain", "2", "--timeout=soon"}, time.Minute},
	} {
		if got := ctlDeadline(c.args); got != c.want {
			t.Errorf("ctlDeadline(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}
