package accounts

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
)

// MaxSSODomains bounds a tenant's list of SSO allowed email domains.
const MaxSSODomains = 50

// SSODomainsField names the allowed domains in validation errors and forms.
const SSODomainsField = "sso_allowed_domains"

var domainRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)

// SplitDomains splits a text field of domains separated by commas, spaces
// or new lines.
func SplitDomains(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// NormalizeSSODomains validates a list of email domains (example.com; a
// leading "@" is dropped) and returns it lower-cased, sorted and without
// duplicates. Errors name SSODomainsField.
func NormalizeSSODomains(list []string) ([]string, error) {
	var out []string
	for _, d := range list {
		d = strings.TrimSuffix(strings.TrimPrefix(strings.ToLower(strings.TrimSpace(d)), "@"), ".")
		if d == "" {
			continue
		}
		if len(d) > 253 || !domainRE.MatchString(d) {
			return nil, fault.Invalid(SSODomainsField, "%q is not a domain such as example.com", d)
		}
		out = append(out, d)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > MaxSSODomains {
		return nil, fault.Invalid(SSODomainsField, "at most %d domains", MaxSSODomains)
	}
	return out, nil
}

// SSODomains returns the email domains whose people the tenant's own
// identity provider may admit without an invitation (none: invitation only).
func SSODomains(ctx context.Context, db *pgxpool.Pool, tenantID string) ([]string, error) {
	return ssoDomains(ctx, db, tenantID)
}

func ssoDomains(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, tenantID string) ([]string, error) {
	var list []string
	err := q.QueryRow(ctx, `SELECT allowed_domains FROM tenant_sso WHERE tenant_id = $1`, tenantID).Scan(&list)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sso domains: %w", err)
	}
	return list, nil
}

// SaveSSODomains validates (NormalizeSSODomains) and stores the tenant's
// SSO allowed email domains and returns them as stored.
func SaveSSODomains(ctx context.Context, db *pgxpool.Pool, who audit.Actor, list []string) ([]string, error) {
	list, err := NormalizeSSODomains(list)
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []string{}
	}
	err = store.InTx(ctx, db, func(tx pgx.Tx) error {
		old, err := ssoDomains(ctx, tx, who.TenantID)
		if err != nil {
			return err
		}
		if slices.Equal(old, list) {
			return nil
		}
		if _, err := tx.Exec(ctx, `INSERT INTO tenant_sso (tenant_id, allowed_domains) VALUES ($1, $2)
			ON CONFLICT (tenant_id) DO UPDATE SET allowed_domains = $2, updated_at = now()`, who.TenantID, list); err != nil {
			return fmt.Errorf("save sso domains: %w", err)
		}
		return audit.Record(ctx, tx, who, "settings.sso_domains", "tenant", who.TenantID, map[string]any{"allowed_domains": list})
	})
	if err != nil {
		return nil, fmt.Errorf("save sso domains: %w", err)
	}
	return list, nil
}

// googleIssuers are the issuers of Google accounts, whose "hd" claim is the
// only proof that an account belongs to a Workspace domain: a consumer
// Google account can carry a verified address at any domain (a former
// employee's, say), so it is never admitted by domain.
var googleIssuers = []string{"https://accounts.google.com", "accounts.google.com"}

// admitsByDomain reports whether the tenant's allowed domains admit the
// identity: its verified email is at an allowed domain, and its hosted
// domain (Google's "hd"), when present, is allowed too. A Google identity
// without "hd" is not admitted.
func admitsByDomain(allowed []string, id Identity, email string) bool {
	at := strings.LastIndexByte(email, '@')
	if len(allowed) == 0 || at < 0 || !slices.Contains(allowed, email[at+1:]) {
		return false
	}
	hd := strings.ToLower(strings.TrimSpace(id.HostedDomain))
	if hd != "" {
		return slices.Contains(allowed, hd)
	}
	return !slices.Contains(googleIssuers, strings.TrimSuffix(id.Issuer, "/"))
}
