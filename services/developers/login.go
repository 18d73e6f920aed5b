package developers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/services/accounts"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/tenancy"
	"github.com/tollgate/tollgate/services/token"
)

// Login checks an address and password in the tenant's portal. client is
// the caller's address, for throttling. A rejected developer is refused
// (only after the right password, so nothing leaks).
func (s *Service) Login(ctx context.Context, t tenancy.Tenant, email, password, client string) (Developer, error) {
	if _, err := s.portal(ctx, t.ID); err != nil {
		return Developer{}, err
	}
	email = strings.ToLower(strings.TrimSpace(email))
	if len(email) > 254 || len(password) > accounts.MaxPasswordLen {
		return Developer{}, ErrBadCredentials
	}
	acct := "dev-login:account:" + t.ID + ":" + email
	if err := s.hit(ctx, "dev-login:client:"+client, RuleLoginClient,
		acct+":"+client, RuleLoginAccount, acct, RuleLoginGlobal); err != nil {
		return Developer{}, err
	}
	var hash *string
	row := s.DB.QueryRow(ctx, `SELECT `+devCols+`, password_hash FROM developers WHERE tenant_id = $1 AND lower(email) = $2`,
		t.ID, email)
	var d Developer
	err := row.Scan(&d.ID, &d.TenantID, &d.ConsumerID, &d.Email, &d.Name, &d.Status, &d.EmailVerified,
		&d.HasPassword, &d.CreatedAt, &hash)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Developer{}, fmt.Errorf("login: %w", err)
	}
	h := dummyHash()
	if err == nil && hash != nil {
		h = *hash
	}
	ok, cerr := accounts.CheckPassword(h, password)
	if cerr != nil {
		return Developer{}, fmt.Errorf("login: %w", cerr)
	}
	if err != nil || hash == nil || !ok {
		return Developer{}, ErrBadCredentials
	}
	if d.Status == StatusRejected {
		return Developer{}, fault.Denied("developer-rejected", "this account was not approved by the API provider")
	}
	if s.Throttle != nil {
		_ = s.Throttle.Reset(ctx, acct+":"+client)
	}
	return d, nil
}

// Session is a signed-in developer. ID is the secret the cookie or bearer
// token carries (only its digest is stored); CSRF is the token every form of
// a cookie session must echo.
type Session struct {
	ID        string
	CSRF      string
	Developer Developer
	ExpiresAt time.Time
}

// StartSession makes a new session for dev with a fresh random id (an id
// planted before sign-in is worthless after it).
func (s *Service) StartSession(ctx context.Context, dev Developer) (Session, error) {
	id, err := token.New("tgp_")
	if err != nil {
		return Session{}, fmt.Errorf("start session: %w", err)
	}
	csrf, err := token.New("")
	if err != nil {
		return Session{}, fmt.Errorf("start session: %w", err)
	}
	sess := Session{ID: id, CSRF: csrf, Developer: dev, ExpiresAt: time.Now().Add(SessionMax)}
	if _, err := s.DB.Exec(ctx, `INSERT INTO developer_sessions (digest, tenant_id, developer_id, csrf_token, expires_at)
		VALUES ($1, $2, $3, $4, $5)`, digest(id), dev.TenantID, dev.ID, csrf, sess.ExpiresAt); err != nil {
		return Session{}, fmt.Errorf("start session: %w", err)
	}
	return sess, nil
}

// LookupSession returns the live session with this id in the tenant's
// portal and refreshes its idle timer, or fault.ErrUnauthenticated. A
// session of another tenant's portal is unknown here.
func (s *Service) LookupSession(ctx context.Context, tenantID, id string) (Session, error) {
	if id == "" || len(id) > 128 || !store.ValidID(tenantID) {
		return Session{}, fault.ErrUnauthenticated
	}
	sess := Session{ID: id}
	d := &sess.Developer
	err := s.DB.QueryRow(ctx, `UPDATE developer_sessions ds SET seen_at = now()
		FROM developers d
		WHERE ds.digest = $1 AND ds.tenant_id = $2 AND d.id = ds.developer_id
		  AND ds.expires_at > now() AND ds.seen_at > now() - $3::interval AND d.status <> 'rejected'
		RETURNING ds.csrf_token, ds.expires_at, d.id, d.tenant_id, d.consumer_id, d.email, d.name, d.status,
		          d.email_verified_at IS NOT NULL, d.password_hash IS NOT NULL, d.created_at`,
		digest(id), tenantID, fmt.Sprintf("%d seconds", int(SessionIdle.Seconds()))).
		Scan(&sess.CSRF, &sess.ExpiresAt, &d.ID, &d.TenantID, &d.ConsumerID, &d.Email, &d.Name, &d.Status,
			&d.EmailVerified, &d.HasPassword, &d.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, fault.ErrUnauthenticated
	}
	if err != nil {
		return Session{}, fmt.Errorf("lookup session: %w", err)
	}
	return sess, nil
}

// EndSession signs a session out.
func (s *Service) EndSession(ctx context.Context, id string) error {
	if _, err := s.DB.Exec(ctx, `DELETE FROM developer_sessions WHERE digest = $1`, digest(id)); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

// Prune drops expired sessions and tokens.
func (s *Service) Prune(ctx context.Context) error {
	if _, err := s.DB.Exec(ctx, `DELETE FROM developer_sessions WHERE expires_at < now() OR seen_at < now() - $1::interval`,
		fmt.Sprintf("%d seconds", int(SessionIdle.Seconds()))); err != nil {
		return fmt.Errorf("prune sessions: %w", err)
	}
	if _, err := s.DB.Exec(ctx, `DELETE FROM developer_tokens WHERE expires_at < now() - interval '7 days'`); err != nil {
		return fmt.Errorf("prune tokens: %w", err)
	}
	return nil
}

// RequestReset mails a password reset link when the address has an account
// in the tenant's portal, and does nothing visible otherwise.
func (s *Service) RequestReset(ctx context.Context, t tenancy.Tenant, email, client string) error {
	p, err := s.portal(ctx, t.ID)
	if err != nil {
		return err
	}
	v := &fault.ValidationError{}
	email = normalizeEmail(v, "email", email)
	if err := v.Err(); err != nil {
		return err
	}
	if err := s.hit(ctx, "dev-reset:client:"+client, RuleResetClient,
		"dev-reset:account:"+t.ID+":"+email, RuleResetAccount); err != nil {
		return err
	}
	var tok string
	var dev Developer
	err = store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		d, err := scanDev(tx.QueryRow(ctx, `SELECT `+devCols+` FROM developers WHERE tenant_id = $1 AND lower(email) = $2
			AND status <> 'rejected'`, t.ID, email))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		dev = d
		tok, err = newToken(ctx, tx, t.ID, "reset", d.ID, d.Email, ResetTTL)
		return err
	})
	if err != nil {
		return fmt.Errorf("request reset: %w", err)
	}
	if tok != "" {
		s.send(ctx, t, p, dev.Email, mailReset, mailData{Name: dev.Name, Link: s.link(t, "/reset?token="+tok)})
	}
	return nil
}

// ResetPassword sets a new password with a reset link's token, signs every
// session of the developer out and marks the address verified (the link
// proved it). Field names: token, password.
func (s *Service) ResetPassword(ctx context.Context, t tenancy.Tenant, tok, password, client string) (Developer, error) {
	if _, err := s.portal(ctx, t.ID); err != nil {
		return Developer{}, err
	}
	v := &fault.ValidationError{}
	checkPassword(v, "password", password)
	if err := v.Err(); err != nil {
		return Developer{}, err
	}
	if err := s.hit(ctx, "dev-verify:client:"+client, RuleVerifyClient); err != nil {
		return Developer{}, err
	}
	hash, err := accounts.HashPassword(password)
	if err != nil {
		return Developer{}, fmt.Errorf("reset password: %w", err)
	}
	var dev Developer
	err = store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		r, err := useToken(ctx, tx, t.ID, "reset", tok)
		if err != nil {
			return err
		}
		if r.DeveloperID == nil {
			return fault.Invalid("token", "the link is invalid, already used or expired; ask for a new one")
		}
		dev, err = scanDev(tx.QueryRow(ctx, `UPDATE developers SET password_hash = $3,
			email_verified_at = coalesce(email_verified_at, now()), updated_at = now()
			WHERE tenant_id = $1 AND id = $2 RETURNING `+devCols, t.ID, *r.DeveloperID, hash))
		if err != nil {
			return notFound(err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM developer_sessions WHERE developer_id = $1`, dev.ID); err != nil {
			return fmt.Errorf("end sessions: %w", err)
		}
		return nil
	})
	if err != nil {
		return Developer{}, fmt.Errorf("reset password: %w", err)
	}
	return dev, nil
}
