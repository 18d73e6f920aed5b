package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestUnavailable(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"no rows", pgx.ErrNoRows, false},
		{"unique violation", &pgconn.PgError{Code: codeUniqueViolation}, false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"connection refused", fmt.Errorf("get tenant: %w", refused), true},
		{"connection exception", &pgconn.PgError{Code: "08006"}, true},
		{"admin shutdown", fmt.Errorf("x: %w", &pgconn.PgError{Code: "57P01"}), true},
		{"starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"lost connection", fmt.Errorf("query: %w", io.ErrUnexpectedEOF), true},
		{"other error", errors.New("boom"), false},
	} {
		if got := Unavailable(tc.err); got != tc.want {
			t.Errorf("%s: Unavailable = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestMonitorLogsOnce: an outage is logged when it starts, at most once per
// Repeat while it lasts, and once when it ends; other errors change nothing.
func TestMonitorLogsOnce(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	m := &Monitor{Logger: slog.New(slog.NewTextHandler(&buf, nil)), Repeat: 50 * time.Millisecond}
	down := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	m.Observe(nil)
	for range 100 {
		m.Observe(down)
	}
	if _, ok := m.DownSince(); !ok {
		t.Fatalf("not down")
	}
	m.Observe(errors.New("a bad query")) // says nothing about the server
	time.Sleep(60 * time.Millisecond)
	for range 100 {
		m.Observe(down)
	}
	m.Observe(nil)
	m.Observe(nil)
	out := buf.String()
	for msg, want := range map[string]int{"postgres unreachable": 1, "postgres still unreachable": 1, "postgres reachable again": 1} {
		if n := strings.Count(out, msg); n != want {
			t.Errorf("%q logged %d times, want %d:\n%s", msg, n, want, out)
		}
	}
	if _, ok := m.DownSince(); ok {
		t.Errorf("still down after recovery")
	}
}
