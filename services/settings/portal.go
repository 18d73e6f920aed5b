package settings

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
)

// Developer signup modes.
const (
	// SignupOpen lets anyone (of the allowed domains) sign up.
	SignupOpen = "open"
	// SignupApproval lets anyone sign up; the tenant approves each developer.
	SignupApproval = "approval"
	// SignupInvite lets only invited addresses sign up.
	SignupInvite = "invite"
)

// MaxAllowedDomains bounds the allowed email domains of a portal.
const MaxAllowedDomains = 100

var domainRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)

// Portal is the tenant's developer portal configuration: whether it is on,
// how developers sign up, and how it looks (applied to every page and mail).
// The JSON shape is that of PUT /v1/portal.
type Portal struct {
	Enabled bool `json:"enabled"`
	// Signup is open, approval or invite.
	Signup string `json:"signup"`
	// DisplayName is the portal's name; "" shows the tenant's name.
	DisplayName string `json:"display_name"`
	// AccentColor is #rrggbb; "" means the default.
	AccentColor string `json:"accent_color"`
	// LogoURL is an https:// image; "" means none.
	LogoURL string `json:"logo_url"`
	// SupportEmail is shown to developers and used as Reply-To of mails.
	SupportEmail string `json:"support_email"`
	// AllowedEmailDomains, when not empty, limits signup (and OIDC sign-in
	// of new developers) to addresses of these domains.
	AllowedEmailDomains []string `json:"allowed_email_domains"`
	// OIDC is the developers' identity provider (read-only here: set it
	// with SaveDeveloperOIDC).
	OIDC OIDC `json:"oidc"`
}

// Branding returns the portal's look as Branding.
func (p Portal) Branding() Branding {
	return Branding{Title: p.DisplayName, Color: p.AccentColor, LogoURL: p.LogoURL, SupportEmail: p.SupportEmail}
}

// EmailAllowed reports whether an address may sign up under the allowed
// domains (every address when none are set).
func (p Portal) EmailAllowed(email string) bool {
	if len(p.AllowedEmailDomains) == 0 {
		return true
	}
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return false
	}
	dom := strings.ToLower(email[at+1:])
	for _, d := range p.AllowedEmailDomains {
		if dom == d {
			return true
		}
	}
	return false
}

// GetPortal returns the tenant's portal settings (defaults when never saved:
// off, open signup).
func GetPortal(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}, tenantID string) (Portal, error) {
	p := Portal{Signup: SignupOpen, AllowedEmailDomains: []string{}}
	var sec []byte
	err := q.QueryRow(ctx, `SELECT portal_enabled, signup_mode, portal_title, portal_color, portal_logo_url,
		support_email, allowed_email_domains, dev_oidc_issuer, dev_oidc_client_id, dev_oidc_client_secret
		FROM tenant_settings WHERE tenant_id = $1`, tenantID).
		Scan(&p.Enabled, &p.Signup, &p.DisplayName, &p.AccentColor, &p.LogoURL, &p.SupportEmail,
			&p.AllowedEmailDomains, &p.OIDC.Issuer, &p.OIDC.ClientID, &sec)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, nil
	}
	if err != nil {
		return Portal{}, fmt.Errorf("get portal settings: %w", err)
	}
	p.OIDC.HasSecret = len(sec) > 0
	return p, nil
}

// normalizePortal validates p, naming fields as PUT /v1/portal does.
func normalizePortal(p Portal) (Portal, error) {
	v := &fault.ValidationError{}
	p.DisplayName = strings.TrimSpace(p.DisplayName)
	p.AccentColor = strings.ToLower(strings.TrimSpace(p.AccentColor))
	p.LogoURL = strings.TrimSpace(p.LogoURL)
	p.SupportEmail = strings.TrimSpace(p.SupportEmail)
	switch p.Signup {
	case "":
		p.Signup = SignupOpen
	case SignupOpen, SignupApproval, SignupInvite:
	default:
		v.Add("signup", "must be %q, %q or %q", SignupOpen, SignupApproval, SignupInvite)
	}
	if utf8.RuneCountInString(p.DisplayName) > 100 {
		v.Add("display_name", "must be at most 100 characters")
	}
	if p.AccentColor != "" && !colorRE.MatchString(p.AccentColor) {
		v.Add("accent_color", "must be a colour like #4f46e5")
	}
	if p.LogoURL != "" {
		if u, err := url.Parse(p.LogoURL); err != nil || u.Scheme != "https" || u.Host == "" || len(p.LogoURL) > 2000 {
			v.Add("logo_url", "must be an https:// URL")
		}
	}
	if p.SupportEmail != "" {
		if a, err := mail.ParseAddress(p.SupportEmail); err != nil || a.Address != p.SupportEmail {
			v.Add("support_email", "must be an email address")
		}
	}
	if len(p.AllowedEmailDomains) > MaxAllowedDomains {
		v.Add("allowed_email_domains", "at most %d domains are allowed", MaxAllowedDomains)
	}
	doms := make([]string, 0, len(p.AllowedEmailDomains))
	seen := map[string]bool{}
	for i, d := range p.AllowedEmailDomains {
		d = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(d), "@")))
		switch {
		case len(d) > 253 || !domainRE.MatchString(d):
			v.Add(fmt.Sprintf("allowed_email_domains[%d]", i), "must be a domain such as example.com")
		case seen[d]:
		default:
			seen[d] = true
			doms = append(doms, d)
		}
	}
	p.AllowedEmailDomains = doms
	if err := v.Err(); err != nil {
		return Portal{}, err
	}
	return p, nil
}

// SavePortal applies change to the tenant's current portal settings,
// validates and stores them, and returns the whole result. The OIDC part is
// not changed here.
func SavePortal(ctx context.Context, db *pgxpool.Pool, who audit.Actor, change func(*Portal) error) (Portal, error) {
	var out Portal
	err := store.InTx(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO tenant_settings (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING`, who.TenantID); err != nil {
			return fmt.Errorf("init settings: %w", err)
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM tenant_settings WHERE tenant_id = $1 FOR UPDATE`, who.TenantID); err != nil {
			return fmt.Errorf("lock settings: %w", err)
		}
		cur, err := GetPortal(ctx, tx, who.TenantID)
		if err != nil {
			return err
		}
		next := cur
		next.AllowedEmailDomains = append([]string(nil), cur.AllowedEmailDomains...)
		if err := change(&next); err != nil {
			return err
		}
		next.OIDC = cur.OIDC
		if next, err = normalizePortal(next); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE tenant_settings SET portal_enabled = $2, signup_mode = $3, portal_title = $4,
			portal_color = $5, portal_logo_url = $6, support_email = $7, allowed_email_domains = $8, updated_at = now()
			WHERE tenant_id = $1`, who.TenantID, next.Enabled, next.Signup, next.DisplayName, next.AccentColor,
			next.LogoURL, next.SupportEmail, next.AllowedEmailDomains); err != nil {
			return fmt.Errorf("save portal settings: %w", err)
		}
		out = next
		data := next
		data.OIDC = OIDC{}
		return audit.Record(ctx, tx, who, "settings.portal", "tenant", who.TenantID, data)
	})
	if err != nil {
		return Portal{}, fmt.Errorf("save portal settings: %w", err)
	}
	return out, nil
}

// DeveloperOIDC returns the developers' IdP with its decrypted client
// secret, for signing in. ok is false when the tenant has none.
func DeveloperOIDC(ctx context.Context, db *pgxpool.Pool, secret []byte, tenantID string) (o OIDC, ok bool, err error) {
	var sec []byte
	err = db.QueryRow(ctx, `SELECT dev_oidc_issuer, dev_oidc_client_id, dev_oidc_client_secret FROM tenant_settings
		WHERE tenant_id = $1`, tenantID).Scan(&o.Issuer, &o.ClientID, &sec)
	if errors.Is(err, pgx.ErrNoRows) {
		return OIDC{}, false, nil
	}
	if err != nil {
		return OIDC{}, false, fmt.Errorf("get developer oidc: %w", err)
	}
	if !o.Enabled() {
		return OIDC{}, false, nil
	}
	if len(sec) > 0 {
		plain, err := open(secret, sec)
		if err != nil {
			return OIDC{}, false, fmt.Errorf("decrypt developer oidc client secret: %w", err)
		}
		o.ClientSecret, o.HasSecret = string(plain), true
	}
	return o, true, nil
}

// SaveDeveloperOIDC validates and stores the developers' IdP, with the
// rules of SaveOIDC (an empty ClientSecret keeps the stored one; an empty
// issuer and client id turn it off). Field names: oidc.issuer,
// oidc.client_id, oidc.client_secret.
func SaveDeveloperOIDC(ctx context.Context, db *pgxpool.Pool, secret []byte, who audit.Actor, o OIDC) error {
	o.Issuer = strings.TrimSpace(o.Issuer)
	o.ClientID = strings.TrimSpace(o.ClientID)
	v := &fault.ValidationError{}
	off := o.Issuer == "" && o.ClientID == ""
	if !off {
		u, err := url.Parse(o.Issuer)
		if o.Issuer == "" {
			v.Add("oidc.issuer", "is required")
		} else if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			v.Add("oidc.issuer", "must be the issuer URL, such as https://accounts.example.com")
		} else if u.Scheme == "http" && !o.AllowHTTP {
			v.Add("oidc.issuer", "must be an https:// URL")
		}
		if o.ClientID == "" {
			v.Add("oidc.client_id", "is required")
		}
		if len(o.ClientSecret) > 1000 {
			v.Add("oidc.client_secret", "must be at most 1000 characters")
		}
	}
	if err := v.Err(); err != nil {
		return err
	}
	var sealed []byte
	if o.ClientSecret != "" && !off {
		var err error
		if sealed, err = seal(secret, []byte(o.ClientSecret)); err != nil {
			return fmt.Errorf("save developer oidc: %w", err)
		}
	}
	err := store.InTx(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO tenant_settings (tenant_id, dev_oidc_issuer, dev_oidc_client_id, dev_oidc_client_secret)
			VALUES ($1, $2, $3, $4)
			ON CONFLICT (tenant_id) DO UPDATE SET dev_oidc_issuer = $2, dev_oidc_client_id = $3,
				dev_oidc_client_secret = CASE WHEN $5 THEN NULL ELSE coalesce($4, tenant_settings.dev_oidc_client_secret) END,
				updated_at = now()`,
			who.TenantID, o.Issuer, o.ClientID, sealed, off); err != nil {
			return fmt.Errorf("save developer oidc: %w", err)
		}
		return audit.Record(ctx, tx, who, "settings.developer_oidc", "tenant", who.TenantID,
			map[string]any{"issuer": o.Issuer, "client_id": o.ClientID, "secret_changed": sealed != nil})
	})
	if err != nil {
		return fmt.Errorf("save developer oidc: %w", err)
	}
	return nil
}

// PortalDomain returns the tenant owning a verified custom domain of
// purpose "portal" (ok false when none does).
func PortalDomain(ctx context.Context, db *pgxpool.Pool, host string) (tenantID string, ok bool, err error) {
	err = db.QueryRow(ctx, `SELECT tenant_id FROM custom_domains WHERE lower(domain) = lower($1)
		AND purpose = 'portal' AND verified_at IS NOT NULL`, host).Scan(&tenantID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("portal domain: %w", err)
	}
	return tenantID, true, nil
}
