package outage

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
)

type lines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// msgs lists the messages logged so far.
func (l *lines) msgs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for line := range strings.SplitSeq(l.b.String(), "\n") {
		var m struct{ Msg string }
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m.Msg)
		}
	}
	return out
}

func TestTrackerLogsAnOutageOnce(t *testing.T) {
	t.Parallel()
	var out lines
	now := time.Unix(1_000_000, 0)
	tr := New(Options{Name: "redis", Logger: slog.New(slog.NewJSONHandler(&out, nil)), Now: func() time.Time { return now }})
	errDown := errors.New("connection refused")
	step := func(d time.Duration) { now = now.Add(d) }

	tr.OK() // up: nothing
	if tr.Down() || tr.DownFor() != 0 {
		t.Fatal("down before any failure")
	}
	// An outage: failures every 100ms for 3 minutes.
	for range 1800 {
		tr.Fail("configsync", errDown)
		step(100 * time.Millisecond)
	}
	if got := tr.DownFor(); got < 179*time.Second || got > 181*time.Second {
		t.Fatalf("DownFor %v after 3 minutes", got)
	}
	tr.OK()
	tr.OK()
	want := []string{"redis unreachable", "redis still unreachable", "redis still unreachable", "redis reachable again"}
	if got := out.msgs(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("logged %q, want %q", got, want)
	}
	if tr.Down() || tr.DownFor() != 0 {
		t.Fatal("still down after recovery")
	}

	// A flapping dependency: down and up every 2 seconds for a minute logs
	// at most one start and one end per minute.
	out = lines{}
	step(time.Minute)
	for range 30 {
		tr.Fail("ratelimit", errDown)
		step(time.Second)
		tr.OK()
		step(time.Second)
	}
	if got := out.msgs(); len(got) > 4 {
		t.Fatalf("flapping for a minute logged %d lines: %q", len(got), got)
	}
}

func TestRedisLoggerRateLimited(t *testing.T) {
	t.Parallel()
	var out lines
	now := time.Unix(1_000_000, 0)
	l := NewRedisLogger(slog.New(slog.NewJSONHandler(&out, nil)), time.Minute)
	l.now = func() time.Time { return now }
	for range 50 {
		l.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v", 5, "refused")
		l.Printf(context.Background(), "redis: discarding bad PubSub connection: %v", "EOF")
		now = now.Add(time.Second)
	}
	got := out.msgs()
	// 50 seconds: each kind once; then, a minute after the first, again
	// with the count of lines held back.
	if len(got) != 2 {
		t.Fatalf("logged %d lines for 100 in 50s: %q", len(got), got)
	}
	now = now.Add(time.Minute)
	l.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v", 5, "refused")
	out.mu.Lock()
	last := out.b.String()
	out.mu.Unlock()
	if !strings.Contains(last, `"similar_lines_withheld":49`) || !strings.Contains(last, "failed to dial after 5 attempts: refused") {
		t.Fatalf("second line of a kind: %s", last)
	}
}

// TestTrackerWithRedisGoingAway follows a real client through an outage of
// the test Redis.
func TestTrackerWithRedisGoingAway(t *testing.T) {
	t.Parallel()
	fwd := testredis.NewForwarder(t)
	rdb := fwd.Client(t)
	var out lines
	tr := New(Options{Name: "redis", Logger: slog.New(slog.NewJSONHandler(&out, nil))})
	call := func() {
		if err := rdb.Ping(context.Background()).Err(); err != nil {
			tr.Fail("test", err)
			return
		}
		tr.OK()
	}
	call()
	fwd.Cut()
	for range 20 {
		call()
		time.Sleep(10 * time.Millisecond)
	}
	if !tr.Down() || tr.DownFor() < 100*time.Millisecond {
		t.Fatalf("down %v for %v", tr.Down(), tr.DownFor())
	}
	fwd.Restore()
	deadline := time.Now().Add(5 * time.Second)
	for tr.Down() && time.Now().Before(deadline) {
		call()
		time.Sleep(10 * time.Millisecond)
	}
	want := []string{"redis unreachable", "redis reachable again"}
	if got := out.msgs(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("logged %q, want %q", got, want)
	}
}
