// Package logevery keeps a failure that repeats from flooding the log: the
// first is logged, then at most one a period with the number left out, and
// the recovery once.
package logevery

import (
	"log/slog"
	"sync"
	"time"
)

// Minute is the period the control plane's retry loops log at.
const Minute = time.Minute

// Limiter logs a repeating failure at most once a Period. Its zero value
// logs at most once a minute. It is safe for concurrent use.
type Limiter struct {
	// Period is the least time between two logged failures (Minute when
	// zero).
	Period time.Duration

	mu      sync.Mutex
	last    time.Time // when a failure was last logged; zero: none since the last success
	skipped int       // failures not logged since then
	now     func() time.Time
}

// Error logs msg at error level with args when no failure was logged for a
// period (adding "suppressed", the number of failures left out since the
// last logged one), and returns whether it did.
func (l *Limiter) Error(log *slog.Logger, msg string, args ...any) bool {
	l.mu.Lock()
	now := l.clock()
	period := l.Period
	if period <= 0 {
		period = Minute
	}
	if !l.last.IsZero() && now.Sub(l.last) < period {
		l.skipped++
		l.mu.Unlock()
		return false
	}
	skipped := l.skipped
	l.last, l.skipped = now, 0
	l.mu.Unlock()
	if skipped > 0 {
		args = append(args, "suppressed", skipped)
	}
	log.Error(msg, args...)
	return true
}

// Recovered logs msg at info level when failures were logged since the last
// success, and starts over: the next failure is logged at once.
func (l *Limiter) Recovered(log *slog.Logger, msg string, args ...any) {
	l.mu.Lock()
	failing := !l.last.IsZero()
	l.last, l.skipped = time.Time{}, 0
	l.mu.Unlock()
	if failing {
		log.Info(msg, args...)
	}
}

func (l *Limiter) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}
