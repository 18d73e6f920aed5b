package logevery

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLimiterLogsOncePerPeriodAndRecovery(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	now := time.Unix(1000, 0)
	l := &Limiter{now: func() time.Time { return now }}

	if !l.Error(log, "down", "err", "refused") {
		t.Fatal("first failure not logged")
	}
	for range 100 {
		now = now.Add(500 * time.Millisecond) // 50 s of retries
		if l.Error(log, "down") {
			t.Fatalf("a failure within the minute was logged at %v", now)
		}
	}
	now = now.Add(10 * time.Second)
	if !l.Error(log, "down") {
		t.Fatal("no failure logged after the minute")
	}
	l.Recovered(log, "up")
	l.Recovered(log, "up again") // nothing failed since: not logged
	if !l.Error(log, "down") {
		t.Fatal("the first failure after a recovery was not logged")
	}

	out := buf.String()
	if got := strings.Count(out, "msg=down"); got != 3 {
		t.Errorf("logged %d failures, want 3:\n%s", got, out)
	}
	if !strings.Contains(out, "suppressed=100") {
		t.Errorf("the second failure does not count the 100 left out:\n%s", out)
	}
	if strings.Count(out, "msg=up") != 1 || strings.Contains(out, "up again") {
		t.Errorf("recovery logged other than once:\n%s", out)
	}
}
