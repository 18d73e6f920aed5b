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
	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/services/outbox"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/token"
)

// MaxDomains is the default of the operator's limit on a tenant's custom
// domains (limits.Domains).
const MaxDomains = limits.DefaultDomains

// Claims and checks of custom domains. A host name can be claimed by any
// number of tenants while unverified (a claim blocks nobody); the first
// tenant to prove it in DNS takes it, and the others' unverified claims of
// it are removed. Unverified claims expire after ClaimTTL; verified domains
// are re-checked (RecheckDomains) and lose their verification when their
// TXT record has been missing RecheckMisses times in a row.
const (
	ClaimTTL      = 7 * 24 * time.Hour
	RecheckMisses = 2
)

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
	// CheckedAt is when the TXT record was last seen (verification or a
	// re-check); nil while unverified.
	CheckedAt *time.Time `json:"checked_at"`
}

// VerificationName is the DNS name of the TXT record that proves ownership.
func (d Domain) VerificationName() string { return "_tollgate-challenge." + d.Domain }

// ExpiresAt is when an unverified claim is removed (nil once verified).
func (d Domain) ExpiresAt() *time.Time {
	if d.VerifiedAt != nil {
		return nil
	}
	t := d.CreatedAt.Add(ClaimTTL)
	return &t
}

var hostRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)

const domainCols = `id, domain, verification_token, created_at, verified_at, purpose, checked_at`

func scanDomain(row pgx.Row) (Domain, error) {
	var d Domain
	err := row.Scan(&d.ID, &d.Domain, &d.VerificationToken, &d.CreatedAt, &d.VerifiedAt, &d.Purpose, &d.CheckedAt)
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
// portal) under the default limits (see AddDomainLimited).
func AddDomainFor(ctx context.Context, db *pgxpool.Pool, who audit.Actor, domain, purpose string, platformDomains ...string) (Domain, error) {
	return AddDomainLimited(ctx, db, who, limits.Defaults(), domain, purpose, platformDomains...)
}

// AddDomainLimited registers a custom domain for a purpose (gateway or
// portal): a claim that the tenant proves with VerifyDomain. Other tenants'
// unverified claims of the same name do not stand in the way; a name
// another tenant verified does. defaults are the operator's limits (the
// tenant's own apply on top; limit domains counts claims and verified
// domains alike). platformDomains are the platform's own domains (proxy,
// portal), which tenants cannot claim. Field names: domain, purpose.
func AddDomainLimited(ctx context.Context, db *pgxpool.Pool, who audit.Actor, defaults limits.Limits, domain, purpose string, platformDomains ...string) (Domain, error) {
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
		lim, err := limits.Begin(ctx, tx, defaults, who.TenantID)
		if err != nil {
			return err
		}
		// The tenant's own expired claims make room first.
		if _, err := tx.Exec(ctx, `DELETE FROM custom_domains WHERE tenant_id = $1 AND verified_at IS NULL
			AND created_at < now() - $2 * interval '1 second'`, who.TenantID, int64(ClaimTTL/time.Second)); err != nil {
			return fmt.Errorf("prune expired claims: %w", err)
		}
		n, err := limits.Count(ctx, tx, who.TenantID, limits.Domains)
		if err != nil {
			return err
		}
		if err := lim.Check(limits.Domains, n+1, "domain"); err != nil {
			return err
		}
		var taken bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM custom_domains WHERE lower(domain) = $1
			AND verified_at IS NOT NULL AND tenant_id <> $2)`, domain, who.TenantID).Scan(&taken); err != nil {
			return fmt.Errorf("check domain: %w", err)
		}
		if taken {
			return fault.Conflict("domain", "%s is verified by another tenant", domain)
		}
		d, err = scanDomain(tx.QueryRow(ctx, `INSERT INTO custom_domains (tenant_id, domain, verification_token, purpose)
			VALUES ($1, $2, $3, $4) RETURNING `+domainCols, who.TenantID, domain, tok, purpose))
		if _, ok := store.UniqueViolation(err); ok {
			return fault.Conflict("domain", "%s is already one of your domains", domain)
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
			if err := outbox.MarkChanged(ctx, tx, who.TenantID); err != nil {
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
	found, reason := checkTXT(ctx, lookup, d)
	if found != txtFound {
		return d, fault.Invalid("domain", "%s not verified yet (%s): publish a TXT record %s with the value %s; DNS changes can take a while",
			d.Domain, reason, d.VerificationName(), d.VerificationToken)
	}
	err = store.InTx(ctx, db, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE custom_domains SET verified_at = now(), checked_at = now(), check_misses = 0
			WHERE tenant_id = $1 AND id = $2 RETURNING verified_at, checked_at`, who.TenantID, id).Scan(&d.VerifiedAt, &d.CheckedAt)
		if c, ok := store.UniqueViolation(err); ok && c == "custom_domains_verified_key" {
			return fault.Conflict("domain", "%s is verified by another tenant; it must remove it (or lose it at its next DNS check) first", d.Domain)
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return fault.ErrNotFound // removed meanwhile
		}
		if err != nil {
			return fmt.Errorf("mark verified: %w", err)
		}
		// The proof takes the name over: other tenants' unverified claims
		// of it go (each tenant's audit log says so).
		rows, err := tx.Query(ctx, `DELETE FROM custom_domains WHERE lower(domain) = lower($1) AND tenant_id <> $2
			AND verified_at IS NULL RETURNING id::text, tenant_id::text`, d.Domain, who.TenantID)
		if err != nil {
			return fmt.Errorf("remove other claims: %w", err)
		}
		type claim struct{ id, tenantID string }
		removed, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (claim, error) {
			var c claim
			return c, r.Scan(&c.id, &c.tenantID)
		})
		if err != nil {
			return fmt.Errorf("remove other claims: %w", err)
		}
		for _, c := range removed {
			if err := audit.Record(ctx, tx, audit.Actor{TenantID: c.tenantID, Name: "system:domains"}, "domain.claim_lost",
				"custom_domain", c.id, map[string]any{"domain": d.Domain, "reason": "another tenant verified it"}); err != nil {
				return err
			}
		}
		// Served from the next snapshot on.
		if err := outbox.MarkChanged(ctx, tx, who.TenantID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, who, "domain.verify", "custom_domain", id, map[string]any{"domain": d.Domain})
	})
	if err != nil {
		return Domain{}, fmt.Errorf("verify domain: %w", err)
	}
	return d, nil
}

// txtResult is the outcome of one look at a domain's TXT record.
type txtResult int

const (
	txtFound   txtResult = iota // the record holds the token
	txtMissing                  // no record, or none with the token
	txtFailed                   // the lookup failed: nothing is known
)

// checkTXT looks for d's token at its verification name; reason says why
// it was not found, for people.
func checkTXT(ctx context.Context, lookup LookupTXT, d Domain) (txtResult, string) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	records, lerr := lookup(lctx, d.VerificationName())
	for _, r := range records {
		if strings.TrimSpace(r) == d.VerificationToken {
			return txtFound, ""
		}
	}
	switch {
	case lerr != nil:
		var dnsErr *net.DNSError
		if !errors.As(lerr, &dnsErr) || !dnsErr.IsNotFound {
			return txtFailed, "the DNS lookup failed"
		}
	case len(records) > 0:
		return txtMissing, "the TXT record does not hold the token"
	}
	return txtMissing, "no TXT record found"
}

// PruneDomainClaims removes unverified claims older than ttl (ClaimTTL if
// 0) and returns how many it removed.
func PruneDomainClaims(ctx context.Context, db *pgxpool.Pool, ttl time.Duration) (int64, error) {
	if ttl <= 0 {
		ttl = ClaimTTL
	}
	tag, err := db.Exec(ctx, `DELETE FROM custom_domains WHERE verified_at IS NULL
		AND created_at < now() - $1 * interval '1 second'`, int64(ttl/time.Second))
	if err != nil {
		return 0, fmt.Errorf("prune domain claims: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Rechecked counts what one RecheckDomains pass did.
type Rechecked struct {
	// Checked domains still hold their token.
	Checked int
	// Missed domains lacked it, but not yet RecheckMisses times in a row.
	Missed int
	// Unverified domains lost their verification (no longer served).
	Unverified int
	// Failed lookups told nothing; those domains are tried again next pass.
	Failed int
	// Pruned unverified claims had expired (ClaimTTL).
	Pruned int64
}

// recheckBatch bounds the domains one RecheckDomains pass looks up.
const recheckBatch = 500

// RecheckDomains looks up the TXT record of verified domains last checked
// more than olderThan ago (at most 500 per call, the longest unchecked
// first), and removes expired unverified claims (PruneDomainClaims). A
// domain whose record lacks its token RecheckMisses times in a row loses
// its verification: it is no longer served (the config is marked changed)
// and the tenant's audit log says why; it can verify again once the record
// is back. A lookup that fails (timeout, server failure) changes nothing.
// The control plane runs it periodically; several replicas may run it at
// once (each domain's update checks that no other pass got there first).
func RecheckDomains(ctx context.Context, db *pgxpool.Pool, lookup LookupTXT, olderThan time.Duration) (Rechecked, error) {
	var out Rechecked
	var err error
	if out.Pruned, err = PruneDomainClaims(ctx, db, ClaimTTL); err != nil {
		return out, err
	}
	rows, err := db.Query(ctx, `SELECT `+domainCols+`, tenant_id::text, check_misses FROM custom_domains
		WHERE verified_at IS NOT NULL AND (checked_at IS NULL OR checked_at < now() - $1 * interval '1 millisecond')
		ORDER BY checked_at NULLS FIRST, id LIMIT $2`, olderThan.Milliseconds(), recheckBatch)
	if err != nil {
		return out, fmt.Errorf("recheck domains: %w", err)
	}
	type due struct {
		Domain
		tenantID string
		misses   int
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (due, error) {
		var x due
		err := r.Scan(&x.ID, &x.Domain.Domain, &x.VerificationToken, &x.CreatedAt, &x.VerifiedAt, &x.Purpose, &x.CheckedAt,
			&x.tenantID, &x.misses)
		return x, err
	})
	if err != nil {
		return out, fmt.Errorf("recheck domains: %w", err)
	}
	for _, x := range list {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		res, reason := checkTXT(ctx, lookup, x.Domain)
		switch {
		case res == txtFailed:
			out.Failed++
			continue
		case res == txtFound:
			// Only if no other pass got there first (same checked_at).
			if _, err := db.Exec(ctx, `UPDATE custom_domains SET checked_at = now(), check_misses = 0
				WHERE id = $1 AND verified_at IS NOT NULL AND checked_at IS NOT DISTINCT FROM $2`, x.ID, x.CheckedAt); err != nil {
				return out, fmt.Errorf("recheck %s: %w", x.Domain.Domain, err)
			}
			out.Checked++
			continue
		case x.misses+1 < RecheckMisses:
			if _, err := db.Exec(ctx, `UPDATE custom_domains SET checked_at = now(), check_misses = check_misses + 1
				WHERE id = $1 AND verified_at IS NOT NULL AND checked_at IS NOT DISTINCT FROM $2`, x.ID, x.CheckedAt); err != nil {
				return out, fmt.Errorf("recheck %s: %w", x.Domain.Domain, err)
			}
			out.Missed++
			continue
		}
		// The domain becomes a fresh claim of its tenant (a full ClaimTTL
		// to put the record back and verify again).
		err := store.InTx(ctx, db, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `UPDATE custom_domains SET verified_at = NULL, checked_at = now(), check_misses = 0,
				created_at = now() WHERE id = $1 AND verified_at IS NOT NULL AND checked_at IS NOT DISTINCT FROM $2`, x.ID, x.CheckedAt)
			if err != nil || tag.RowsAffected() == 0 {
				return err
			}
			out.Unverified++
			// No longer served from the next snapshot on.
			if err := outbox.MarkChanged(ctx, tx, x.tenantID); err != nil {
				return err
			}
			return audit.Record(ctx, tx, audit.Actor{TenantID: x.tenantID, Name: "system:domains"}, "domain.unverify",
				"custom_domain", x.ID, map[string]any{"domain": x.Domain.Domain, "reason": reason})
		})
		if err != nil {
			return out, fmt.Errorf("unverify %s: %w", x.Domain.Domain, err)
		}
	}
	return out, nil
}
