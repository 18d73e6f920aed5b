package accounts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/throttle"
	"github.com/tollgate/tollgate/services/token"
)

// Session lifetimes: a session ends after SessionIdle without a request or
// SessionMax after login, whichever comes first.
const (
	SessionIdle = 12 * time.Hour
	SessionMax  = 7 * 24 * time.Hour
)

// Session is a signed-in user. ID is the secret the cookie carries (only its
// digest is stored); CSRF is the synchronizer token every form of the session
// must echo.
type Session struct {
	ID        string
	CSRF      string
	User      User
	CreatedAt time.Time
	ExpiresAt time.Time
}

// StartSession makes a new session for the user: a fresh random id at every
// login, so that an id planted before login is worthless after it.
func StartSession(ctx context.Context, db *pgxpool.Pool, u User) (Session, error) {
	id, err := token.New("tgs_")
	if err != nil {
		return Session{}, fmt.Errorf("start session: %w", err)
	}
	csrf, err := token.New("")
	if err != nil {
		return Session{}, fmt.Errorf("start session: %w", err)
	}
	now := time.Now()
	s := Session{ID: id, CSRF: csrf, User: u, CreatedAt: now, ExpiresAt: now.Add(SessionMax)}
	if _, err := db.Exec(ctx, `INSERT INTO sessions (digest, user_id, tenant_id, csrf_token, expires_at)
		VALUES ($1, $2, $3, $4, $5)`, digest(id), u.ID, u.TenantID, csrf, s.ExpiresAt); err != nil {
		return Session{}, fmt.Errorf("start session: %w", err)
	}
	return s, nil
}

// LookupSession returns the live session with this id and refreshes its idle
// timer, or fault.ErrUnauthenticated.
func LookupSession(ctx context.Context, db *pgxpool.Pool, id string) (Session, error) {
	if id == "" || len(id) > 128 {
		return Session{}, fault.ErrUnauthenticated
	}
	s := Session{ID: id}
	u := &s.User
	err := db.QueryRow(ctx, `UPDATE sessions s SET seen_at = now()
		FROM users u
		WHERE s.digest = $1 AND u.id = s.user_id AND s.expires_at > now() AND s.seen_at > now() - $2::interval
		RETURNING s.csrf_token, s.created_at, s.expires_at, `+userColsOf("u"),
		digest(id), fmt.Sprintf("%d seconds", int(SessionIdle.Seconds()))).
		Scan(&s.CSRF, &s.CreatedAt, &s.ExpiresAt, &u.ID, &u.TenantID, &u.Email, &u.Name, &u.Role, &u.HasPassword,
			&u.EmailVerified, &u.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, fault.ErrUnauthenticated
	}
	if err != nil {
		return Session{}, fmt.Errorf("lookup session: %w", err)
	}
	return s, nil
}

// EndSession deletes the session (logout). Ending an unknown session succeeds.
func EndSession(ctx context.Context, db *pgxpool.Pool, id string) error {
	if _, err := db.Exec(ctx, `DELETE FROM sessions WHERE digest = $1`, digest(id)); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

// PruneSessions deletes expired sessions, throttling records and used or
// expired one-time tokens; the control plane may call it periodically.
func PruneSessions(ctx context.Context, db *pgxpool.Pool) error {
	for _, q := range []string{
		`DELETE FROM sessions WHERE expires_at < now() OR seen_at < now() - interval '1 day'`,
		`DELETE FROM login_failures WHERE at < now() - interval '1 day'`,
		`DELETE FROM password_resets WHERE expires_at < now() - interval '1 day'`,
		`DELETE FROM email_verifications WHERE expires_at < now() - interval '1 day'`,
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
	}
	// The longest window of this package's rules is a day.
	return (&throttle.Limiter{DB: db}).Prune(ctx, 24*time.Hour)
}
