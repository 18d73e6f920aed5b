// Package throttle counts attempts per subject in fixed windows in Postgres,
// atomically (one upsert per attempt, so concurrent attempts on several
// control-plane replicas never both slip under a limit), to slow down
// guessing and abuse of sign-up, sign-in, verification and reset.
package throttle

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/fault"
)

// Rule is a limit of Max attempts per Window.
type Rule struct {
	Max    int
	Window time.Duration
}

// Limiter counts attempts in the throttle_hits table.
type Limiter struct {
	DB *pgxpool.Pool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Hit counts one attempt of subject under rule and returns a
// *fault.ThrottledError when the attempt is over the limit (it is still
// counted, so hammering keeps the subject blocked until the window ends).
func (l *Limiter) Hit(ctx context.Context, subject string, rule Rule) error {
	if rule.Max <= 0 || rule.Window <= 0 {
		return nil
	}
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	start := now.Truncate(rule.Window)
	var hits int
	if err := l.DB.QueryRow(ctx, `INSERT INTO throttle_hits (subject, window_start, hits) VALUES ($1, $2, 1)
		ON CONFLICT (subject, window_start) DO UPDATE SET hits = throttle_hits.hits + 1
		RETURNING hits`, subject, start).Scan(&hits); err != nil {
		return fmt.Errorf("throttle %s: %w", subject, err)
	}
	if hits > rule.Max {
		return &fault.ThrottledError{RetryAfter: start.Add(rule.Window).Sub(now)}
	}
	return nil
}

// Reset forgets subject's attempts (after a successful sign-in, say).
func (l *Limiter) Reset(ctx context.Context, subject string) error {
	if _, err := l.DB.Exec(ctx, `DELETE FROM throttle_hits WHERE subject = $1`, subject); err != nil {
		return fmt.Errorf("throttle reset %s: %w", subject, err)
	}
	return nil
}

// Prune drops windows that ended more than maxWindow ago.
func (l *Limiter) Prune(ctx context.Context, maxWindow time.Duration) error {
	if _, err := l.DB.Exec(ctx, `DELETE FROM throttle_hits WHERE window_start < $1`,
		time.Now().Add(-2*maxWindow)); err != nil {
		return fmt.Errorf("throttle prune: %w", err)
	}
	return nil
}
