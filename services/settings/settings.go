// Package settings holds a tenant's portal settings: developer portal
// branding, the tenant's own OIDC identity provider (its client secret
// encrypted at rest) and custom domains with their verification tokens.
package settings

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
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
	"github.com/tollgate/tollgate/services/secrets"
	"github.com/tollgate/tollgate/services/store"
)

// Branding is how the tenant's developer portal looks.
type Branding struct {
	// Title is the portal's name; "" means the tenant's name.
	Title string `json:"title"`
	// Color is the accent colour as #rrggbb; "" means the default.
	Color string `json:"color"`
	// LogoURL is an https:// image URL; "" means none.
	LogoURL string `json:"logo_url"`
	// SupportEmail is shown to developers; "" means none.
	SupportEmail string `json:"support_email"`
}

// OIDC is the tenant's own identity provider. ClientSecret is write-only:
// reads return HasSecret instead.
type OIDC struct {
	Issuer       string `json:"issuer"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"-"`
	HasSecret    bool   `json:"has_secret"`
	// AllowHTTP accepts an http:// issuer (dev and tests, where the SSRF
	// guard is off too); otherwise only https:// is.
	AllowHTTP bool `json:"-"`
}

// Enabled reports whether the tenant configured an IdP.
func (o OIDC) Enabled() bool { return o.Issuer != "" && o.ClientID != "" }

// Settings are all portal settings of one tenant.
type Settings struct {
	Branding Branding
	OIDC     OIDC
}

var colorRE = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// Get returns the tenant's settings (zero values when never saved).
func Get(ctx context.Context, db *pgxpool.Pool, tenantID string) (Settings, error) {
	var s Settings
	var sec []byte
	err := db.QueryRow(ctx, `SELECT portal_title, portal_color, portal_logo_url, support_email,
		oidc_issuer, oidc_client_id, oidc_client_secret FROM tenant_settings WHERE tenant_id = $1`, tenantID).
		Scan(&s.Branding.Title, &s.Branding.Color, &s.Branding.LogoURL, &s.Branding.SupportEmail,
			&s.OIDC.Issuer, &s.OIDC.ClientID, &sec)
	if errors.Is(err, pgx.ErrNoRows) {
		return Settings{}, nil
	}
	if err != nil {
		return Settings{}, fmt.Errorf("get settings: %w", err)
	}
	s.OIDC.HasSecret = len(sec) > 0
	return s, nil
}

// TenantOIDC returns the tenant's IdP with its decrypted client secret, for
// signing in. ok is false when the tenant has none.
func TenantOIDC(ctx context.Context, db *pgxpool.Pool, secret []byte, tenantID string) (o OIDC, ok bool, err error) {
	var sec []byte
	err = db.QueryRow(ctx, `SELECT oidc_issuer, oidc_client_id, oidc_client_secret FROM tenant_settings
		WHERE tenant_id = $1`, tenantID).Scan(&o.Issuer, &o.ClientID, &sec)
	if errors.Is(err, pgx.ErrNoRows) {
		return OIDC{}, false, nil
	}
	if err != nil {
		return OIDC{}, false, fmt.Errorf("get tenant oidc: %w", err)
	}
	if !o.Enabled() {
		return OIDC{}, false, nil
	}
	if len(sec) > 0 {
		plain, err := open(secret, sec)
		if err != nil {
			return OIDC{}, false, fmt.Errorf("decrypt oidc client secret: %w", err)
		}
		o.ClientSecret, o.HasSecret = string(plain), true
	}
	return o, true, nil
}

// SaveBranding validates and stores the branding. Field names: portal_title,
// portal_color, portal_logo_url, support_email.
func SaveBranding(ctx context.Context, db *pgxpool.Pool, who audit.Actor, b Branding) (Branding, error) {
	v := &fault.ValidationError{}
	b.Title = strings.TrimSpace(b.Title)
	b.Color = strings.ToLower(strings.TrimSpace(b.Color))
	b.LogoURL = strings.TrimSpace(b.LogoURL)
	b.SupportEmail = strings.TrimSpace(b.SupportEmail)
	if utf8.RuneCountInString(b.Title) > 100 {
		v.Add("portal_title", "must be at most 100 characters")
	}
	if b.Color != "" && !colorRE.MatchString(b.Color) {
		v.Add("portal_color", "must be a colour like #4f46e5")
	}
	if b.LogoURL != "" {
		if u, err := url.Parse(b.LogoURL); err != nil || u.Scheme != "https" || u.Host == "" || len(b.LogoURL) > 2000 {
			v.Add("portal_logo_url", "must be an https:// URL")
		}
	}
	if b.SupportEmail != "" {
		if a, err := mail.ParseAddress(b.SupportEmail); err != nil || a.Address != b.SupportEmail {
			v.Add("support_email", "must be an email address")
		}
	}
	if err := v.Err(); err != nil {
		return Branding{}, err
	}
	err := store.InTx(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO tenant_settings (tenant_id, portal_title, portal_color, portal_logo_url, support_email)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (tenant_id) DO UPDATE SET portal_title = $2, portal_color = $3, portal_logo_url = $4,
				support_email = $5, updated_at = now()`,
			who.TenantID, b.Title, b.Color, b.LogoURL, b.SupportEmail); err != nil {
			return fmt.Errorf("save branding: %w", err)
		}
		return audit.Record(ctx, tx, who, "settings.branding", "tenant", who.TenantID, b)
	})
	if err != nil {
		return Branding{}, fmt.Errorf("save branding: %w", err)
	}
	return b, nil
}

// SaveOIDC validates and stores the tenant's IdP. An empty ClientSecret keeps
// the stored one; an empty Issuer and ClientID turn tenant SSO off. Field
// names: oidc_issuer, oidc_client_id, oidc_client_secret.
func SaveOIDC(ctx context.Context, db *pgxpool.Pool, secret []byte, who audit.Actor, o OIDC) error {
	o.Issuer = strings.TrimSpace(o.Issuer)
	o.ClientID = strings.TrimSpace(o.ClientID)
	v := &fault.ValidationError{}
	off := o.Issuer == "" && o.ClientID == ""
	if !off {
		u, err := url.Parse(o.Issuer)
		if o.Issuer == "" {
			v.Add("oidc_issuer", "is required")
		} else if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			v.Add("oidc_issuer", "must be the issuer URL, such as https://accounts.example.com")
		} else if u.Scheme == "http" && !o.AllowHTTP {
			v.Add("oidc_issuer", "must be an https:// URL")
		}
		if o.ClientID == "" {
			v.Add("oidc_client_id", "is required")
		}
		if len(o.ClientSecret) > 1000 {
			v.Add("oidc_client_secret", "must be at most 1000 characters")
		}
	}
	if err := v.Err(); err != nil {
		return err
	}
	var sealed []byte
	if o.ClientSecret != "" && !off {
		var err error
		if sealed, err = seal(secret, []byte(o.ClientSecret)); err != nil {
			return fmt.Errorf("save oidc: %w", err)
		}
	}
	err := store.InTx(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO tenant_settings (tenant_id, oidc_issuer, oidc_client_id, oidc_client_secret)
			VALUES ($1, $2, $3, $4)
			ON CONFLICT (tenant_id) DO UPDATE SET oidc_issuer = $2, oidc_client_id = $3,
				oidc_client_secret = CASE WHEN $5 THEN NULL ELSE coalesce($4, tenant_settings.oidc_client_secret) END,
				updated_at = now()`,
			who.TenantID, o.Issuer, o.ClientID, sealed, off); err != nil {
			return fmt.Errorf("save oidc: %w", err)
		}
		return audit.Record(ctx, tx, who, "settings.oidc", "tenant", who.TenantID,
			map[string]any{"issuer": o.Issuer, "client_id": o.ClientID, "secret_changed": sealed != nil})
	})
	if err != nil {
		return fmt.Errorf("save oidc: %w", err)
	}
	return nil
}

// Sealed settings secrets are AES-256-GCM with a random nonce. The key is
// derived from the server secret with HKDF (secrets.PurposeSettings) and
// sealed values start with its key id, sealV2; values sealed before (no key
// id) used a key derived with HMAC-SHA256 and still open, and are sealed
// anew the next time they are saved.
var sealV2 = []byte("tgs2:")

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// legacyAEAD is the key of values sealed without a key id.
func legacyAEAD(secret []byte) (cipher.AEAD, error) {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("tollgate/settings-encryption/v1"))
	return newAEAD(m.Sum(nil))
}

func seal(secret, plain []byte) ([]byte, error) {
	a, err := newAEAD(secrets.Derive(secret, secrets.PurposeSettings))
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, a.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append(append([]byte(nil), sealV2...), nonce...)
	return a.Seal(out, nonce, plain, sealV2), nil
}

func open(secret, sealed []byte) ([]byte, error) {
	if bytes.HasPrefix(sealed, sealV2) {
		a, err := newAEAD(secrets.Derive(secret, secrets.PurposeSettings))
		if err != nil {
			return nil, err
		}
		rest := sealed[len(sealV2):]
		if len(rest) >= a.NonceSize() {
			if plain, err := a.Open(nil, rest[:a.NonceSize()], rest[a.NonceSize():], sealV2); err == nil {
				return plain, nil
			}
		}
		// A legacy value whose random nonce happened to start with the key
		// id: try the legacy key below.
	}
	a, err := legacyAEAD(secret)
	if err != nil {
		return nil, err
	}
	if len(sealed) < a.NonceSize() {
		return nil, errors.New("sealed value too short")
	}
	return a.Open(nil, sealed[:a.NonceSize()], sealed[a.NonceSize():], nil)
}
