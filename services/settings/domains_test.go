package settings_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/storetest"
	"github.com/tollgate/tollgate/services/tenancy"
)

// dns is a TXT lookup over a map; fail makes every lookup a server failure.
type dns struct {
	mu      sync.Mutex
	records map[string][]string
	fail    bool
}

func (d *dns) set(name string, vals ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.records == nil {
		d.records = map[string][]string{}
	}
	d.records[name] = vals
}

func (d *dns) lookup(_ context.Context, name string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail {
		return nil, &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
	}
	if r, ok := d.records[name]; ok {
		return r, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// TestDomainClaims checks that an unverified claim blocks nobody, that
// verifying takes the name over, that claims expire and that the tenant's
// domain limit counts them.
func TestDomainClaims(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	ta, _, _ := tenancy.Create(ctx, db, secret, "A", "dom-a")
	tb, _, _ := tenancy.Create(ctx, db, secret, "B", "dom-b")
	a := audit.Actor{TenantID: ta.ID, Name: "test"}
	b := audit.Actor{TenantID: tb.ID, Name: "test"}
	var d dns

	squat, err := settings.AddDomain(ctx, db, a, "api.shop.example", "gw.test")
	if err != nil {
		t.Fatal(err)
	}
	owner, err := settings.AddDomain(ctx, db, b, "API.shop.example", "gw.test")
	if err != nil {
		t.Fatalf("an unverified claim blocked another tenant: %v", err)
	}
	// A publishes nothing; B proves the name and takes it over.
	d.set(owner.VerificationName(), owner.VerificationToken)
	if _, err := settings.VerifyDomain(ctx, db, a, squat.ID, d.lookup); err == nil {
		t.Fatal("verified without the token in DNS")
	}
	if v, err := settings.VerifyDomain(ctx, db, b, owner.ID, d.lookup); err != nil || v.VerifiedAt == nil || v.CheckedAt == nil {
		t.Fatalf("verify = %+v, %v", v, err)
	}
	if list, _ := settings.ListDomains(ctx, db, ta.ID); len(list) != 0 {
		t.Errorf("the other tenant's claim survived the takeover: %+v", list)
	}
	var lost int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'domain.claim_lost'`,
		ta.ID).Scan(&lost); err != nil || lost != 1 {
		t.Errorf("claim_lost audit entries %d, %v", lost, err)
	}
	// Verified, the name is B's alone.
	var ce *fault.ConflictError
	if _, err := settings.AddDomain(ctx, db, a, "api.shop.example", "gw.test"); !errors.As(err, &ce) || ce.Field != "domain" {
		t.Errorf("claiming a verified domain: %v", err)
	}

	// The limit counts claims; expired claims make room.
	lim := limits.Defaults()
	lim.Domains = 2
	if _, err := settings.AddDomainLimited(ctx, db, a, lim, "one.example", settings.PurposeGateway); err != nil {
		t.Fatal(err)
	}
	old, err := settings.AddDomainLimited(ctx, db, a, lim, "two.example", settings.PurposePortal)
	if err != nil {
		t.Fatal(err)
	}
	_, err = settings.AddDomainLimited(ctx, db, a, lim, "three.example", settings.PurposeGateway)
	var le *fault.LimitError
	if !errors.As(err, &le) || le.Limit != "domains" || le.Field != "domain" || le.Max != 2 {
		t.Fatalf("third domain: %v, want limit domains exceeded", err)
	}
	if _, err := db.Exec(ctx, `UPDATE custom_domains SET created_at = now() - interval '8 days' WHERE id = $1`, old.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := settings.AddDomainLimited(ctx, db, a, lim, "three.example", settings.PurposeGateway); err != nil {
		t.Fatalf("an expired claim still counts: %v", err)
	}
	if _, err := db.Exec(ctx, `UPDATE custom_domains SET created_at = now() - interval '8 days' WHERE domain = 'one.example'`); err != nil {
		t.Fatal(err)
	}
	if n, err := settings.PruneDomainClaims(ctx, db, 0); err != nil || n != 1 {
		t.Errorf("pruned %d, %v; want the one expired claim", n, err)
	}
}

// TestRecheckDomains checks that a verified domain whose TXT record is gone
// loses its verification after RecheckMisses checks (and the config is
// marked changed), while failed lookups change nothing.
func TestRecheckDomains(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	tn, _, _ := tenancy.Create(ctx, db, secret, "R", "recheck")
	who := audit.Actor{TenantID: tn.ID, Name: "test"}
	var d dns
	dom, err := settings.AddDomain(ctx, db, who, "api.recheck.example", "gw.test")
	if err != nil {
		t.Fatal(err)
	}
	d.set(dom.VerificationName(), dom.VerificationToken)
	if _, err := settings.VerifyDomain(ctx, db, who, dom.ID, d.lookup); err != nil {
		t.Fatal(err)
	}
	gen := func() int64 {
		var g int64
		if err := db.QueryRow(ctx, `SELECT generation FROM config_changes WHERE tenant_id = $1`, tn.ID).Scan(&g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	pass := func(want settings.Rechecked) {
		t.Helper()
		got, err := settings.RecheckDomains(ctx, db, d.lookup, 0)
		if err != nil || got != want {
			t.Fatalf("recheck = %+v, %v; want %+v", got, err, want)
		}
	}
	verified := func() bool {
		list, err := settings.ListDomains(ctx, db, tn.ID)
		if err != nil || len(list) != 1 {
			t.Fatalf("domains %+v, %v", list, err)
		}
		return list[0].VerifiedAt != nil
	}

	pass(settings.Rechecked{Checked: 1})
	// Recently checked domains are not due.
	if got, err := settings.RecheckDomains(ctx, db, d.lookup, 3600_000_000_000); err != nil || got != (settings.Rechecked{}) {
		t.Errorf("recheck of a fresh domain = %+v, %v", got, err)
	}
	d.mu.Lock()
	d.fail = true
	d.mu.Unlock()
	pass(settings.Rechecked{Failed: 1})
	d.mu.Lock()
	d.fail = false
	d.mu.Unlock()
	d.set(dom.VerificationName(), "someone-else")
	before := gen()
	pass(settings.Rechecked{Missed: 1})
	if !verified() || gen() != before {
		t.Fatal("one miss unverified the domain")
	}
	pass(settings.Rechecked{Unverified: 1})
	if verified() {
		t.Fatal("the domain is still verified without its record")
	}
	if gen() <= before {
		t.Error("unverifying did not mark the config changed")
	}
	// With the record back, the tenant verifies again.
	d.set(dom.VerificationName(), dom.VerificationToken)
	if _, err := settings.VerifyDomain(ctx, db, who, dom.ID, d.lookup); err != nil || !verified() {
		t.Fatalf("verify again: %v", err)
	}
}
