// Package developers holds the accounts of a tenant's API consumers in its
// developer portal: signup (open, approval or invite-only, optionally limited
// to email domains), address verification, sign-in with a password or the
// tenant's OIDC provider, password reset, sessions, and the tenant's
// approval of developers and subscriptions. Every developer is a consumer of
// the catalog; its apps, subscriptions and keys are the catalog's, and this
// package adds the rules that depend on the account (a verified address, an
// approved developer) on top of them.
//
// Nothing here tells whether an address has an account: signup and reset
// answer the same for known and unknown addresses, and sign-in refuses a
// wrong password and an unknown address alike.
package developers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/accounts"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
	mailpkg "github.com/tollgate/tollgate/services/mail"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/tenancy"
	"github.com/tollgate/tollgate/services/throttle"
	"github.com/tollgate/tollgate/services/token"
)

// Developer states.
const (
	StatusPending  = "pending"
	StatusActive   = "active"
	StatusRejected = "rejected"
)

// Token lifetimes and throttles.
const (
	VerifyTTL = 24 * time.Hour
	ResetTTL  = time.Hour
	InviteTTL = 7 * 24 * time.Hour
	// SessionIdle and SessionMax bound a session: it ends after SessionIdle
	// without a request or SessionMax after sign-in.
	SessionIdle = 12 * time.Hour
	SessionMax  = 7 * 24 * time.Hour
	// MaxDevelopersPerTenant bounds a portal's accounts.
	MaxDevelopersPerTenant = 100_000
)

// Throttle rules: per client address, per account and client, and per
// account from anywhere (slows a distributed guess without letting one
// client lock an account out for everyone).
var (
	RuleSignupClient  = throttle.Rule{Max: 20, Window: time.Hour}
	RuleSignupAccount = throttle.Rule{Max: 5, Window: time.Hour}
	RuleLoginClient   = throttle.Rule{Max: 100, Window: 15 * time.Minute}
	RuleLoginAccount  = throttle.Rule{Max: 10, Window: 15 * time.Minute}
	RuleLoginGlobal   = throttle.Rule{Max: 100, Window: time.Hour}
	RuleVerifyClient  = throttle.Rule{Max: 50, Window: time.Hour}
	RuleResetClient   = throttle.Rule{Max: 20, Window: time.Hour}
	RuleResetAccount  = throttle.Rule{Max: 5, Window: time.Hour}
)

// ErrBadCredentials refuses a sign-in: unknown address or wrong password,
// never told apart.
var ErrBadCredentials = fmt.Errorf("wrong email or password: %w", fault.ErrUnauthenticated)

// Developer is an API consumer's account in one tenant's portal.
type Developer struct {
	ID            string    `json:"id"`
	TenantID      string    `json:"-"`
	ConsumerID    string    `json:"consumer_id"`
	Email         string    `json:"email"`
	Name          string    `json:"name"`
	Status        string    `json:"status"`
	EmailVerified bool      `json:"email_verified"`
	HasPassword   bool      `json:"-"`
	CreatedAt     time.Time `json:"created_at"`
}

// Actor is the developer as the author of audited changes.
func (d Developer) Actor() audit.Actor {
	return audit.Actor{TenantID: d.TenantID, Name: "developer:" + d.ID}
}

// Service runs the developer portal's account rules.
type Service struct {
	// DB is the control plane's database.
	DB *pgxpool.Pool
	// Catalog holds consumers, apps, subscriptions and keys.
	Catalog *catalog.Service
	// Mailer sends verification, reset, invitation and approval mail.
	Mailer mailpkg.Sender
	// Throttle counts attempts; nil turns throttling off (tests only).
	Throttle *throttle.Limiter
	// PortalURL returns the base URL of a tenant's portal (no trailing
	// slash), for links in mails.
	PortalURL func(t tenancy.Tenant) string
	// Logger receives mail failures. If nil, slog.Default().
	Logger *slog.Logger
	// Secret (TOLLGATE_SECRET) decrypts the developer IdP's client secret.
	Secret []byte
}

// Portal returns the tenant's portal settings, or fault.ErrNotFound when
// its portal is off (an off portal does not exist for developers).
func (s *Service) Portal(ctx context.Context, tenantID string) (settings.Portal, error) {
	return s.portal(ctx, tenantID)
}

// OIDC returns the tenant's developer identity provider with its client
// secret; ok is false when it has none.
func (s *Service) OIDC(ctx context.Context, tenantID string) (settings.OIDC, bool, error) {
	return settings.DeveloperOIDC(ctx, s.DB, s.Secret, tenantID)
}

func (s *Service) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Service) hit(ctx context.Context, rules ...any) error {
	if s.Throttle == nil {
		return nil
	}
	for i := 0; i+1 < len(rules); i += 2 {
		if err := s.Throttle.Hit(ctx, rules[i].(string), rules[i+1].(throttle.Rule)); err != nil {
			return err
		}
	}
	return nil
}

// digest is the stored form of a mailed token or session id (256-bit random
// values, so plain SHA-256 suffices).
func digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

const devCols = `id, tenant_id, consumer_id, email, name, status, email_verified_at IS NOT NULL,
	password_hash IS NOT NULL, created_at`

func scanDev(row pgx.Row) (Developer, error) {
	var d Developer
	err := row.Scan(&d.ID, &d.TenantID, &d.ConsumerID, &d.Email, &d.Name, &d.Status, &d.EmailVerified,
		&d.HasPassword, &d.CreatedAt)
	return d, err
}

func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fault.ErrNotFound
	}
	return err
}

// Get returns one developer of the tenant.
func (s *Service) Get(ctx context.Context, tenantID, id string) (Developer, error) {
	if !store.ValidID(id) {
		return Developer{}, fault.ErrNotFound
	}
	d, err := scanDev(s.DB.QueryRow(ctx, `SELECT `+devCols+` FROM developers WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if err != nil {
		return Developer{}, fmt.Errorf("get developer: %w", notFound(err))
	}
	return d, nil
}

// List returns one page of the tenant's developers, of one status when
// status is not "".
func (s *Service) List(ctx context.Context, tenantID, status string, page store.Page) ([]Developer, string, error) {
	pos, err := page.Decode()
	if err != nil {
		return nil, "", err
	}
	at, id := pos.Args()
	limit := page.Size()
	rows, err := s.DB.Query(ctx, `SELECT `+devCols+` FROM developers WHERE tenant_id = $1
		AND ($2 = '' OR status = $2)
		AND ($3::timestamptz IS NULL OR (created_at, id) > ($3, $4::uuid))
		ORDER BY created_at, id LIMIT $5`, tenantID, status, at, id, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list developers: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Developer, error) { return scanDev(r) })
	if err != nil {
		return nil, "", fmt.Errorf("list developers: %w", err)
	}
	next := ""
	if len(list) > limit {
		list = list[:limit]
		next = store.Cursor(list[limit-1].CreatedAt, list[limit-1].ID)
	}
	return list, next, nil
}

// normalizeEmail validates an address and returns it lower-cased.
func normalizeEmail(v *fault.ValidationError, field, email string) string {
	email = strings.ToLower(strings.TrimSpace(email))
	switch {
	case email == "":
		v.Add(field, "is required")
	case len(email) > 254:
		v.Add(field, "must be at most 254 characters")
	default:
		a, err := mail.ParseAddress(email)
		if err != nil || a.Address != email || !strings.Contains(email[strings.LastIndex(email, "@"):], ".") {
			v.Add(field, "must be an email address such as ada@example.com")
		}
	}
	return email
}

func checkName(v *fault.ValidationError, field, name string) {
	switch {
	case strings.TrimSpace(name) == "":
		v.Add(field, "is required")
	case utf8.RuneCountInString(name) > 200:
		v.Add(field, "must be at most 200 characters")
	}
}

func checkPassword(v *fault.ValidationError, field, pw string) {
	switch n := utf8.RuneCountInString(pw); {
	case n < accounts.MinPasswordLen:
		v.Add(field, "must be at least %d characters", accounts.MinPasswordLen)
	case len(pw) > accounts.MaxPasswordLen:
		v.Add(field, "must be at most %d bytes", accounts.MaxPasswordLen)
	}
}

// dummyHash is checked when the address is unknown, so that a sign-in takes
// as long whether or not the account exists.
var dummyHash = sync.OnceValue(func() string {
	h, err := accounts.HashPassword("tollgate-dummy-password-for-timing")
	if err != nil {
		panic(err)
	}
	return h
})

// portal returns the tenant's portal settings, or fault.ErrNotFound when the
// portal is off (an off portal does not exist for developers).
func (s *Service) portal(ctx context.Context, tenantID string) (settings.Portal, error) {
	p, err := settings.GetPortal(ctx, s.DB, tenantID)
	if err != nil {
		return settings.Portal{}, err
	}
	if !p.Enabled {
		return settings.Portal{}, fault.ErrNotFound
	}
	return p, nil
}

// newToken stores a single-use mailed token in tx and returns it.
func newToken(ctx context.Context, tx pgx.Tx, tenantID, kind, developerID, email string, ttl time.Duration) (string, error) {
	tok, err := token.New("tgd_")
	if err != nil {
		return "", fmt.Errorf("new %s token: %w", kind, err)
	}
	var dev any
	if developerID != "" {
		dev = developerID
	}
	if _, err := tx.Exec(ctx, `INSERT INTO developer_tokens (digest, tenant_id, kind, developer_id, email, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, digest(tok), tenantID, kind, dev, email, time.Now().Add(ttl)); err != nil {
		return "", fmt.Errorf("store %s token: %w", kind, err)
	}
	return tok, nil
}

// tokenRow is a stored mailed token.
type tokenRow struct {
	DeveloperID *string
	Email       string
}

// useToken consumes a live token of kind in tx (locking it), or returns a
// validation error of field "token".
func useToken(ctx context.Context, tx pgx.Tx, tenantID, kind, tok string) (tokenRow, error) {
	bad := fault.Invalid("token", "the link is invalid, already used or expired; ask for a new one")
	if tok == "" || len(tok) > 128 {
		return tokenRow{}, bad
	}
	var r tokenRow
	err := tx.QueryRow(ctx, `UPDATE developer_tokens SET used_at = now()
		WHERE digest = $1 AND tenant_id = $2 AND kind = $3 AND used_at IS NULL AND expires_at > now()
		RETURNING developer_id, email`, digest(tok), tenantID, kind).Scan(&r.DeveloperID, &r.Email)
	if errors.Is(err, pgx.ErrNoRows) {
		return tokenRow{}, bad
	}
	if err != nil {
		return tokenRow{}, fmt.Errorf("use %s token: %w", kind, err)
	}
	return r, nil
}
