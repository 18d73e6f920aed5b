package worker

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/problem"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// statusFixture publishes a tenant with one key-auth API under /a, plans
// without limits ("p"), with a 3-request quota ("p-quota"), a rate limit
// of 2 per hour ("p-rate") and a concurrency of 1 ("p-conc"), and a second
// tenant (globex).
func statusFixture(t *testing.T, e *env, backendURL string) {
	t.Helper()
	snap := &proxycfg.Snapshot{Schema: proxycfg.SchemaVersion, Generation: 1, Tenants: []proxycfg.Tenant{
		{
			ID: "t-acme", Slug: "acme",
			Upstreams: []proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin,
				Targets: []proxycfg.Target{{URL: backendURL, Weight: 1}}}},
			APIs: []proxycfg.API{{ID: "a", BasePath: "/a", UpstreamID: "u", Auth: proxycfg.AuthKey, StripBasePath: true}},
			Plans: []proxycfg.Plan{
				{ID: "p", APIIDs: []string{"a"}},
				{ID: "p-quota", Quota: proxycfg.Quota{Requests: 3, Period: "day"}, APIIDs: []string{"a"}},
				{ID: "p-rate", RateLimit: proxycfg.RateLimit{Requests: 2, PerSeconds: 3600}, APIIDs: []string{"a"}},
				{ID: "p-conc", Concurrency: 1, APIIDs: []string{"a"}},
			},
		},
		{
			ID: "t-globex", Slug: "globex",
			Upstreams: []proxycfg.Upstream{{ID: "g", Algorithm: proxycfg.AlgorithmRoundRobin,
				Targets: []proxycfg.Target{{URL: backendURL, Weight: 1}}}},
			APIs:  []proxycfg.API{{ID: "g", BasePath: "/a", UpstreamID: "g", Auth: proxycfg.AuthKey}},
			Plans: []proxycfg.Plan{{ID: "g-plan", APIIDs: []string{"g"}}},
		},
	}}
	testredis.Publish(t, e.rdb, e.keys, snap)
}

// acmeKey is a record of tenant acme under plan, changed by with.
func acmeKey(id, plan string, with func(*proxycfg.KeyRecord)) proxycfg.KeyRecord {
	r := proxycfg.KeyRecord{ID: id, TenantID: "t-acme", ConsumerID: "c", PlanID: plan, Status: proxycfg.KeyActive}
	if with != nil {
		with(&r)
	}
	return r
}

// billingURL reads the billing_url member of a problem body ("" if none).
func billingURL(t *testing.T, body []byte) string {
	t.Helper()
	var doc struct {
		BillingURL *string `json:"billing_url"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("problem body %s: %v", body, err)
	}
	if doc.BillingURL == nil {
		return ""
	}
	return *doc.BillingURL
}

func TestKeyStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	statusFixture(t, e, backend(t, "b").URL)
	now := time.Now().Unix()
	const payURL = "https://acme.developers.localhost/billing/sub-1"
	tests := []struct {
		name    string
		rec     proxycfg.KeyRecord
		problem *problem.Problem // nil: 200
		billing string           // the 402's billing_url
	}{
		{name: "active", rec: acmeKey("k-active", "p", nil)},
		{name: "active in a subscription", rec: acmeKey("k-sub", "p", func(r *proxycfg.KeyRecord) { r.SubscriptionID = "sub-1" })},
		{name: "revoked", rec: acmeKey("k-revoked", "p", func(r *proxycfg.KeyRecord) { r.Status = proxycfg.KeyRevoked }),
			problem: problem.Unauthorized},
		{name: "suspended", rec: acmeKey("k-suspended", "p", func(r *proxycfg.KeyRecord) { r.Status = proxycfg.KeySuspended }),
			problem: problem.ConsumerSuspended},
		{name: "canceled", rec: acmeKey("k-canceled", "p", func(r *proxycfg.KeyRecord) { r.Status = proxycfg.KeyCanceled }),
			problem: problem.SubscriptionCanceled},
		{name: "past due within grace", rec: acmeKey("k-grace", "p", func(r *proxycfg.KeyRecord) {
			r.Status, r.GraceUntil, r.BillingURL = proxycfg.KeyPastDue, now+3600, payURL
		})},
		{name: "past due after grace", rec: acmeKey("k-due", "p", func(r *proxycfg.KeyRecord) {
			r.Status, r.GraceUntil, r.BillingURL = proxycfg.KeyPastDue, now-1, payURL
		}), problem: problem.PaymentRequired, billing: payURL},
		{name: "past due after grace, no billing url", rec: acmeKey("k-due-nourl", "p", func(r *proxycfg.KeyRecord) {
			r.Status, r.GraceUntil = proxycfg.KeyPastDue, now-1
		}), problem: problem.PaymentRequired},
		{name: "unknown status", rec: acmeKey("k-frozen", "p", func(r *proxycfg.KeyRecord) { r.Status = "frozen" }),
			problem: problem.Unauthorized},
		{name: "expired", rec: acmeKey("k-expired", "p", func(r *proxycfg.KeyRecord) { r.ExpiresAt = now - 1 }),
			problem: problem.Unauthorized},
		{name: "expires at this second", rec: acmeKey("k-expires-now", "p", func(r *proxycfg.KeyRecord) { r.ExpiresAt = now }),
			problem: problem.Unauthorized},
		{name: "not yet expired", rec: acmeKey("k-later", "p", func(r *proxycfg.KeyRecord) { r.ExpiresAt = now + 3600 })},
		{name: "expired and suspended", rec: acmeKey("k-expired-suspended", "p", func(r *proxycfg.KeyRecord) {
			r.Status, r.ExpiresAt = proxycfg.KeySuspended, now-1
		}), problem: problem.Unauthorized},
		// Another tenant's key is unknown here, whatever its status: the
		// status of a foreign key is not told.
		{name: "other tenant's suspended key", rec: proxycfg.KeyRecord{ID: "k-globex", TenantID: "t-globex", PlanID: "g-plan",
			Status: proxycfg.KeySuspended}, problem: problem.Unauthorized},
	}
	for _, tc := range tests {
		testredis.PutKey(t, e.rdb, e.keys, secret, tc.rec.ID, tc.rec)
	}
	r := e.start(t, true)
	r.waitReady(t, 1)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for i := range 2 { // a cache miss, then a hit
				got := r.do(t, "acme.localhost", "/a/x", key(tc.rec.ID))
				if tc.problem == nil {
					if got.status != 200 {
						t.Fatalf("request %d: status %d: %s", i, got.status, got.body)
					}
					continue
				}
				wantProblem(t, got, tc.problem)
				if tc.problem.Status == 401 && got.header.Get("WWW-Authenticate") == "" {
					t.Fatal("401 without WWW-Authenticate")
				}
				if b := billingURL(t, got.body); b != tc.billing {
					t.Fatalf("billing_url %q, want %q (body %s)", b, tc.billing, got.body)
				}
			}
		})
	}
}

// TestSubscriptionSharesLimits: the keys of one subscription count against
// one quota, rate limit and concurrency limit, so that more keys or a
// rotation never give more; another subscription has its own.
func TestSubscriptionSharesLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url, entered, release := blockingBackend(t)
	statusFixture(t, e, url)
	for _, k := range []struct{ key, plan, sub string }{
		{"quota-a", "p-quota", "sub-q"},
		{"quota-b", "p-quota", "sub-q"},
		{"quota-other", "p-quota", "sub-q2"},
		{"rate-a", "p-rate", "sub-r"},
		{"rate-b", "p-rate", "sub-r"},
		{"conc-a", "p-conc", "sub-c"},
		{"conc-b", "p-conc", "sub-c"},
	} {
		testredis.PutKey(t, e.rdb, e.keys, secret, k.key,
			acmeKey("k-"+k.key, k.plan, func(r *proxycfg.KeyRecord) { r.SubscriptionID = k.sub }))
	}
	// A subscription with a billing period: its quota counts in that period,
	// whatever the plan's calendar period.
	periodStart := time.Now().Add(-time.Hour).Unix()
	for _, k := range []string{"billed-a", "billed-b"} {
		testredis.PutKey(t, e.rdb, e.keys, secret, k, acmeKey("k-"+k, "p-quota", func(r *proxycfg.KeyRecord) {
			r.SubscriptionID, r.PeriodStart, r.PeriodEnd = "sub-b", periodStart, time.Now().Add(time.Hour).Unix()
		}))
	}
	r := e.start(t, true)
	r.waitReady(t, 1)

	t.Run("quota", func(t *testing.T) {
		for i, k := range []string{"quota-a", "quota-a", "quota-b"} {
			if res := r.do(t, "acme.localhost", "/a/x", key(k)); res.status != 200 {
				t.Fatalf("request %d (%s): %d %s", i, k, res.status, res.body)
			}
		}
		wantProblem(t, r.do(t, "acme.localhost", "/a/x", key("quota-a")), problem.QuotaExceeded)
		wantProblem(t, r.do(t, "acme.localhost", "/a/x", key("quota-b")), problem.QuotaExceeded)
		period, _, _ := proxycfg.QuotaPeriod("day", time.Now())
		if used, err := e.rdb.Get(t.Context(), e.keys.Quota("s/sub-q", period)).Int64(); err != nil || used != 3 {
			t.Fatalf("subscription quota counter %d (%v), want 3", used, err)
		}
		if res := r.do(t, "acme.localhost", "/a/x", key("quota-other")); res.status != 200 {
			t.Fatalf("another subscription: %d %s", res.status, res.body)
		}
	})

	t.Run("billing period quota", func(t *testing.T) {
		for i, k := range []string{"billed-a", "billed-b", "billed-a"} {
			if res := r.do(t, "acme.localhost", "/a/x", key(k)); res.status != 200 {
				t.Fatalf("request %d (%s): %d %s", i, k, res.status, res.body)
			}
		}
		wantProblem(t, r.do(t, "acme.localhost", "/a/x", key("billed-b")), problem.QuotaExceeded)
		used, err := e.rdb.Get(t.Context(), e.keys.Quota("s/sub-b", proxycfg.BillingPeriodID(periodStart))).Int64()
		if err != nil || used != 3 {
			t.Fatalf("billing-period counter %d (%v), want 3", used, err)
		}
	})

	t.Run("rate limit", func(t *testing.T) {
		for i, k := range []string{"rate-a", "rate-b"} {
			if res := r.do(t, "acme.localhost", "/a/x", key(k)); res.status != 200 {
				t.Fatalf("request %d (%s): %d %s", i, k, res.status, res.body)
			}
		}
		wantProblem(t, r.do(t, "acme.localhost", "/a/x", key("rate-a")), problem.RateLimited)
		wantProblem(t, r.do(t, "acme.localhost", "/a/x", key("rate-b")), problem.RateLimited)
	})

	t.Run("concurrency", func(t *testing.T) {
		done := make(chan response, 1)
		go func() { done <- r.do(t, "acme.localhost", "/a/block", key("conc-a")) }()
		<-entered
		wantProblem(t, r.do(t, "acme.localhost", "/a/x", key("conc-b")), problem.ConcurrencyLimited)
		close(release)
		if res := <-done; res.status != 200 {
			t.Fatalf("blocked request: %d", res.status)
		}
		eventually(t, func() bool { return r.do(t, "acme.localhost", "/a/x", key("conc-b")).status == 200 })
	})
}

// TestKeyStatusChanges: a record changed and announced on the key channel
// takes effect on a worker that has the old one cached; an expiry takes
// effect at its second without any announcement.
func TestKeyStatusChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	statusFixture(t, e, backend(t, "b").URL)
	const payURL = "https://acme.developers.localhost/billing/sub-1"
	put := func(with func(*proxycfg.KeyRecord)) {
		testredis.PutKey(t, e.rdb, e.keys, secret, "k", acmeKey("k", "p", func(r *proxycfg.KeyRecord) {
			r.SubscriptionID = "sub-1"
			if with != nil {
				with(r)
			}
		}))
	}
	put(nil)
	r := e.start(t, true)
	r.waitReady(t, 1)
	get := func() response { return r.do(t, "acme.localhost", "/a/x", key("k")) }
	if res := get(); res.status != 200 {
		t.Fatalf("active: %d %s", res.status, res.body)
	}
	steps := []struct {
		name    string
		with    func(*proxycfg.KeyRecord)
		problem *problem.Problem // nil: 200
	}{
		{name: "suspended", with: func(r *proxycfg.KeyRecord) { r.Status = proxycfg.KeySuspended }, problem: problem.ConsumerSuspended},
		{name: "active again"},
		{name: "past due within grace", with: func(r *proxycfg.KeyRecord) {
			r.Status, r.GraceUntil, r.BillingURL = proxycfg.KeyPastDue, time.Now().Unix()+3600, payURL
		}},
		{name: "grace ended", with: func(r *proxycfg.KeyRecord) {
			r.Status, r.GraceUntil, r.BillingURL = proxycfg.KeyPastDue, time.Now().Unix()-1, payURL
		}, problem: problem.PaymentRequired},
		{name: "canceled", with: func(r *proxycfg.KeyRecord) { r.Status = proxycfg.KeyCanceled }, problem: problem.SubscriptionCanceled},
		{name: "revoked", with: func(r *proxycfg.KeyRecord) { r.Status = proxycfg.KeyRevoked }, problem: problem.Unauthorized},
	}
	var last response
	for _, s := range steps {
		put(s.with)
		testredis.AnnounceKey(t, e.rdb, e.keys, secret, "k")
		want := 200
		if s.problem != nil {
			want = s.problem.Status
		}
		eventually(t, func() bool { last = get(); return last.status == want })
		if s.problem != nil {
			wantProblem(t, last, s.problem)
		}
		if s.problem == problem.PaymentRequired {
			if b := billingURL(t, last.body); b != payURL {
				t.Fatalf("%s: billing_url %q, want %q", s.name, b, payURL)
			}
		}
	}

	// Rotation: the old key gets an expiry (announced once) and works until
	// then; its expiry needs no further announcement.
	expires := time.Now().Unix() + 3
	put(func(r *proxycfg.KeyRecord) { r.ExpiresAt = expires })
	testredis.AnnounceKey(t, e.rdb, e.keys, secret, "k")
	eventually(t, func() bool { last = get(); return last.status == 200 || time.Now().Unix() >= expires })
	if last.status != 200 && time.Now().Unix() < expires {
		t.Fatalf("before expiry: %d", last.status)
	}
	for time.Now().Unix() < expires {
		time.Sleep(50 * time.Millisecond)
	}
	wantProblem(t, get(), problem.Unauthorized)
}
