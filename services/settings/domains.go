package settings

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/publish"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/token"
)

// MaxDomains bounds a tenant's custom domains.
const MaxDomains = 50

// Domain is a custom domain a tenant wants its APIs served on. It is served
// only once verified: the tenant publishes VerificationToken in a DNS TXT
// record at VerificationName.
type Domain struct {
	ID     string `json:"id"`
	Domain string `json:"domain"`
	// Purpose is "gateway" (the tenant's APIs are served there) or
	// "portal" (its developer portal is).
	Purpose           string     `json:"purpose"`
	VerificationToken string     `json:"verification_token"`
	CreatedAt         time.Time  `json:"created_at"`
	VerifiedAt        *time.Time `json:"verified_at"`
}

// VerificationName is the DNS name of the TXT record that proves ownership.
func (d Domain) VerificationName() string { return "_tollgate-challenge." + d.Domain }

var hostRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)

const domainCols = `id, domain, verification_token, created_at, verified_at, purpose`

func scanDomain(row pgx.Row) (Domain, error) {
	var d Domain
	err := row.Scan(&d.ID, &d.Domain, &d.VerificationToken, &d.CreatedAt, &d.VerifiedAt, &d.Purpose)
	return d, err
}

// Custom domain purposes.
const (
	PurposeGateway = "gateway"
	PurposePortal  = "portal"
)

// AddDomain registers a custom gateway domain with a fresh verification
// token. proxyDomain is the platform's own domain, which tenants cannot
// claim. Field name: domain.
func AddDomain(ctx context.Context, db *pgxpool.Pool, who audit.Actor, domain, proxyDomain string) (Domain, error) {
	return AddDomainFor(ctx, db, who, domain, PurposeGateway, proxyDomain)
}

// AddDomainFor registers a custom domain for a purpose (gateway or
// portal). platformDomains are the platform's own domains (proxy, portal),
// which tenants cannot claim. Field names: domain, purpose.
func AddDomainFor(ctx context.Context, db *pgxpool.Pool, who audit.Actor, domain, purpose string, platformDomains ...string) (Domain, error) {
	domain = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(domain)), ".")
	if purpose != PurposeGateway && purpose != PurposePortal {
		return Domain{}, fault.Invalid("purpose", "must be %q or %q", PurposeGateway, PurposePortal)
	}
	for _, pd := range platformDomains {
		if pd != "" && (domain == pd || strings.HasSuffix(domain, "."+pd)) {
			return Domain{}, fault.Invalid("domain", "is under the platform's domain %s; tenants are already served there", pd)
		}
	}
	switch {
	case domain == "":
		return Domain{}, fault.Invalid("domain", "is required")
	case len(domain) > 253 || !hostRE.MatchString(domain):
		return Domain{}, fault.Invalid("domain", "must be a host name such as api.example.com")
	}
	tok, err := token.New("tollgate-verify-")
	if err != nil {
		return Domain{}, fmt.Errorf("add domain: %w", err)
	}
	var d Domain
	err = store.InTx(ctx, db, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM custom_domains WHERE tenant_id = $1`, who.TenantID).Scan(&n); err != nil {
			return fmt.Errorf("count domains: %w", err)
		}
		if n >= MaxDomains {
			return fault.Conflict("domain", "a tenant can have at most %d custom domains", MaxDomains)
		}
		d, err = scanDomain(tx.QueryRow(ctx, `INSERT INTO custom_domains (tenant_id, domain, verification_token, purpose)
			VALUES ($1, $2, $3, $4) RETURNING `+domainCols, who.TenantID, domain, tok, purpose))
		if _, ok := store.UniqueViolation(err); ok {
			return fault.Conflict("domain", "%s is already registered", domain)
		}
		if err != nil {
			return fmt.Errorf("insert domain: %w", err)
		}
		return audit.Record(ctx, tx, who, "domain.add", "custom_domain", d.ID, map[string]any{"domain": domain, "purpose": purpose})
	})
	if err != nil {
		return Domain{}, fmt.Errorf("add domain: %w", err)
	}
	return d, nil
}

// ListDomains returns the tenant's custom domains, oldest first.
func ListDomains(ctx context.Context, db *pgxpool.Pool, tenantID string) ([]Domain, error) {
	rows, err := db.Query(ctx, `SELECT `+domainCols+` FROM custom_domains WHERE tenant_id = $1
		ORDER BY created_at, id`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Domain, error) { return scanDomain(r) })
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	return list, nil
}

// RemoveDomain deletes a custom domain of the actor's tenant; a verified one
// stops being served with the next snapshot (the config is marked changed in
// the same transaction).
func RemoveDomain(ctx context.Context, db *pgxpool.Pool, who audit.Actor, id string) error {
	if !store.ValidID(id) {
		return fault.ErrNotFound
	}
	err := store.InTx(ctx, db, func(tx pgx.Tx) error {
		var verified *time.Time
		err := tx.QueryRow(ctx, `DELETE FROM custom_domains WHERE tenant_id = $1 AND id = $2 RETURNING verified_at`,
			who.TenantID, id).Scan(&verified)
		if errors.Is(err, pgx.ErrNoRows) {
			return fault.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("delete domain: %w", err)
		}
		if verified != nil {
			// The proxies serve it: they stop with the next snapshot.
			if err := publish.MarkChanged(ctx, tx); err != nil {
				return err
			}
		}
		return audit.Record(ctx, tx, who, "domain.remove", "custom_domain", id, nil)
	})
	if err != nil {
		return fmt.Errorf("remove domain: %w", err)
	}
	return nil
}

// LookupTXT resolves the TXT records of a DNS name (net.Resolver.LookupTXT).
type LookupTXT func(ctx context.Context, name string) ([]string, error)

// VerifyDomain checks that the domain's TXT record at VerificationName holds
// its verification token and, if so, marks it verified and the data-plane
// config changed (same transaction), so the proxies serve it within a second. A missing record is a
// ValidationError of the field "domain" that says what to publish.
func VerifyDomain(ctx context.Context, db *pgxpool.Pool, who audit.Actor, id string, lookup LookupTXT) (Domain, error) {
	if !store.ValidID(id) {
		return Domain{}, fault.ErrNotFound
	}
	d, err := scanDomain(db.QueryRow(ctx, `SELECT `+domainCols+` FROM custom_domains WHERE tenant_id = $1 AND id = $2`,
		who.TenantID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Domain{}, fault.ErrNotFound
	}
	if err != nil {
		return Domain{}, fmt.Errorf("verify domain: %w", err)
	}
	if d.VerifiedAt != nil {
		return d, nil
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	records, lerr := lookup(lctx, d.VerificationName())
	found := false
	for _, r := range records {
		found = found || strings.TrimSpace(r) == d.VerificationToken
	}
	if !found {
		reason := "no TXT record found"
		if lerr != nil {
			var dnsErr *net.DNSError
			if !errors.As(lerr, &dnsErr) || !dnsErr.IsNotFound {
				reason = "the DNS lookup failed"
			}
		} else if len(records) > 0 {
			reason = "the TXT record does not hold the token"
		}
		return d, fault.Invalid("domain", "%s not verified yet (%s): publish a TXT record %s with the value %s; DNS changes can take a while",
			d.Domain, reason, d.VerificationName(), d.VerificationToken)
	}
	err = store.InTx(ctx, db, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `UPDATE custom_domains SET verified_at = now() WHERE tenant_id = $1 AND id = $2
			RETURNING verified_at`, who.TenantID, id).Scan(&d.VerifiedAt); err != nil {
			return fmt.Errorf("mark verified: %w", err)
		}
		// Served from the next snapshot on.
		if err := publish.MarkChanged(ctx, tx); err != nil {
			return err
		}
		return audit.Record(ctx, tx, who, "domain.verify", "custom_domain", id, map[string]any{"domain": d.Domain})
	})
	if err != nil {
		return Domain{}, fmt.Errorf("verify domain: %w", err)
	}
	return d, nil
}
