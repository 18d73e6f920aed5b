package store

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Unavailable reports whether err means that the database cannot be reached
// right now (a refused, reset or lost connection, a server shutting down,
// starting or out of connection slots) rather than that the request was
// wrong: the edge answers 503 with Retry-After, and the pool reconnects by
// itself once the server is back.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"): // connection exception
			return true
		case pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", pe.Code == "53300":
			// admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections
			return true
		}
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	for _, e := range []error{io.EOF, io.ErrUnexpectedEOF, syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE} {
		if errors.Is(err, e) {
			return true
		}
	}
	// Failures before the query reached the server: a closed or broken
	// connection.
	return pgconn.SafeToRetry(err)
}

// Monitor watches the database and logs its outages without flooding the
// log: once when it stops answering, at most once per Repeat while it stays
// down (with how long), and once when it answers again.
type Monitor struct {
	// DB is the pool to ping.
	DB *pgxpool.Pool
	// Logger receives the messages. If nil, slog.Default().
	Logger *slog.Logger
	// Interval is the time between pings. If zero, 5s.
	Interval time.Duration
	// Repeat is the least time between two "still down" messages. If zero, 1m.
	Repeat time.Duration

	mu       sync.Mutex
	downAt   time.Time // zero while up
	loggedAt time.Time
}

// Run pings until ctx ends.
func (m *Monitor) Run(ctx context.Context) {
	every := m.Interval
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, every)
		err := m.DB.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		m.Observe(err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Observe records the outcome of a database call: nil counts as up, an
// Unavailable error as down, any other error as nothing (it does not tell
// whether the server answered).
func (m *Monitor) Observe(err error) {
	if err != nil && !Unavailable(err) {
		return
	}
	log := m.Logger
	if log == nil {
		log = slog.Default()
	}
	repeat := m.Repeat
	if repeat <= 0 {
		repeat = time.Minute
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case err == nil && !m.downAt.IsZero():
		log.Info("postgres reachable again", "down_for", now.Sub(m.downAt).Round(time.Second).String())
		m.downAt, m.loggedAt = time.Time{}, time.Time{}
	case err != nil && m.downAt.IsZero():
		log.Error("postgres unreachable: the control plane answers 503 until it is back", "err", err)
		m.downAt, m.loggedAt = now, now
	case err != nil && now.Sub(m.loggedAt) >= repeat:
		log.Error("postgres still unreachable", "down_for", now.Sub(m.downAt).Round(time.Second).String(), "err", err)
		m.loggedAt = now
	}
}

// DownSince returns when the current outage began (ok is false while the
// database answers).
func (m *Monitor) DownSince() (since time.Time, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.downAt, !m.downAt.IsZero()
}
