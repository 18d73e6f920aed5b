package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/services/publish"
	"github.com/tollgate/tollgate/services/storetest"
	"github.com/tollgate/tollgate/services/tenancy"
)

// limitsEnv is one tenant in a catalog whose operator limits are lim.
type limitsEnv struct {
	t   *testing.T
	db  *pgxpool.Pool
	s   *catalog.Service
	who audit.Actor
	up  catalog.Upstream
}

func newLimitsEnv(t *testing.T, lim limits.Limits) *limitsEnv {
	t.Helper()
	ctx := context.Background()
	db := storetest.NewPool(t)
	secret := []byte("limits-test-secret-0123456789")
	s := catalog.New(db, secret, true)
	s.Limits, s.ConfigSize = &lim, publish.TenantConfigBytes
	tn, _, err := tenancy.Create(ctx, db, secret, "L", "lim")
	if err != nil {
		t.Fatal(err)
	}
	e := &limitsEnv{t: t, db: db, s: s, who: audit.Actor{TenantID: tn.ID, Name: "test"}}
	e.up, err = s.CreateUpstream(ctx, e.who, catalog.UpstreamInput{Name: "u", Targets: []catalog.Target{{URL: "http://127.0.0.1:9"}}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// limitErr fails unless err is a LimitError of the limit n (and, when field
// is not "", of that field) that also reads as a conflict.
func limitErr(t *testing.T, err error, n limits.Name, field string) *fault.LimitError {
	t.Helper()
	var le *fault.LimitError
	if !errors.As(err, &le) || le.Limit != string(n) {
		t.Fatalf("err = %v, want limit %s exceeded", err, n)
	}
	if field != "" && le.Field != field {
		t.Errorf("limit %s: field %q, want %q", n, le.Field, field)
	}
	var ce *fault.ConflictError
	if !errors.As(err, &ce) || ce.Message != le.Message || !errors.Is(err, fault.ErrConflict) {
		t.Errorf("a limit error does not read as a conflict: %v", err)
	}
	return le
}

func (e *limitsEnv) count(table string) int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *limitsEnv) api(i int) error {
	_, err := e.s.CreateAPI(context.Background(), e.who, catalog.APIInput{Name: "A", Slug: fmt.Sprintf("a%d", i),
		BasePath: fmt.Sprintf("/a%d", i), UpstreamID: e.up.ID})
	return err
}

// TestLimitsRaceFree creates APIs from many goroutines at once: exactly the
// limit succeed, the rest are refused with limit-exceeded.
func TestLimitsRaceFree(t *testing.T) {
	t.Parallel()
	lim := limits.Defaults()
	lim.APIs = 3
	e := newLimitsEnv(t, lim)
	var wg sync.WaitGroup
	errs := make([]error, 12)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.api(i)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		le := limitErr(t, err, limits.APIs, "")
		if le.Max != 3 || le.Value != 4 {
			t.Errorf("limit error max %d value %d, want 3 and 4", le.Max, le.Value)
		}
	}
	if ok != 3 || e.count("apis") != 3 {
		t.Fatalf("%d creates succeeded, %d APIs stored; want 3", ok, e.count("apis"))
	}

	// The operator raises the tenant's own limit; the default stays.
	if err := limits.SetOverride(context.Background(), e.db, e.who.TenantID, limits.Override{limits.APIs: 4}); err != nil {
		t.Fatal(err)
	}
	if err := e.api(100); err != nil {
		t.Fatalf("after raising the limit: %v", err)
	}
	limitErr(t, e.api(101), limits.APIs, "")
	rep, err := e.s.TenantLimits(context.Background(), e.who.TenantID)
	if err != nil || rep.Limits.APIs != 4 || rep.Usage[limits.APIs] != 4 || rep.Override[limits.APIs] != 4 ||
		rep.Limits.Plans != limits.DefaultPlans {
		t.Errorf("report = %+v, %v", rep, err)
	}
}

func TestLimitsOfObjects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	lim := limits.Defaults()
	lim.Upstreams, lim.TargetsPerUpstream, lim.Targets = 2, 2, 3
	lim.Plans, lim.Consumers, lim.Keys, lim.Routes = 1, 1, 1, 2
	lim.MinHealthIntervalMS = 1000
	e := newLimitsEnv(t, lim)
	targets := func(n int) []catalog.Target {
		var ts []catalog.Target
		for i := range n {
			ts = append(ts, catalog.Target{URL: fmt.Sprintf("http://127.0.0.1:%d", 9000+i)})
		}
		return ts
	}

	t.Run("targets per upstream", func(t *testing.T) {
		_, err := e.s.CreateUpstream(ctx, e.who, catalog.UpstreamInput{Name: "x", Targets: targets(3)})
		limitErr(t, err, limits.TargetsPerUpstream, "targets")
	})
	t.Run("health check interval", func(t *testing.T) {
		_, err := e.s.CreateUpstream(ctx, e.who, catalog.UpstreamInput{Name: "x", Targets: targets(1),
			HealthCheck: &catalog.HealthCheck{IntervalMS: 500}})
		le := limitErr(t, err, limits.MinHealthIntervalMS, "health_check.interval_ms")
		if !le.Lower || le.Max != 1000 || le.Value != 500 {
			t.Errorf("limit error %+v", le)
		}
	})
	var second catalog.Upstream
	t.Run("targets of the tenant and upstreams", func(t *testing.T) {
		var err error
		second, err = e.s.CreateUpstream(ctx, e.who, catalog.UpstreamInput{Name: "y", Targets: targets(2),
			HealthCheck: &catalog.HealthCheck{IntervalMS: 1000}})
		if err != nil {
			t.Fatal(err)
		}
		// 1 + 2 targets: a third upstream is over both limits; upstreams first.
		_, err = e.s.CreateUpstream(ctx, e.who, catalog.UpstreamInput{Name: "z", Targets: targets(1)})
		limitErr(t, err, limits.Upstreams, "")
		// Growing the first upstream to 2 targets makes 4 of 3.
		_, err = e.s.UpdateUpstream(ctx, e.who, e.up.ID, func(in *catalog.UpstreamInput) error {
			in.Targets = targets(2)
			return nil
		})
		limitErr(t, err, limits.Targets, "targets")
	})
	t.Run("a tenant over a lowered limit can still shrink", func(t *testing.T) {
		if err := limits.SetOverride(ctx, e.db, e.who.TenantID, limits.Override{limits.Targets: 1,
			limits.MinHealthIntervalMS: 5000}); err != nil {
			t.Fatal(err)
		}
		// Renaming changes no count; a health check already shorter than the
		// new minimum may stay, not get shorter.
		if _, err := e.s.UpdateUpstream(ctx, e.who, second.ID, func(in *catalog.UpstreamInput) error {
			in.Name = "renamed"
			return nil
		}); err != nil {
			t.Fatalf("rename over the limit: %v", err)
		}
		_, err := e.s.UpdateUpstream(ctx, e.who, second.ID, func(in *catalog.UpstreamInput) error {
			in.HealthCheck.IntervalMS, in.HealthCheck.TimeoutMS = 900, 500
			return nil
		})
		limitErr(t, err, limits.MinHealthIntervalMS, "health_check.interval_ms")
		if _, err := e.s.UpdateUpstream(ctx, e.who, second.ID, func(in *catalog.UpstreamInput) error {
			in.Targets = in.Targets[:1]
			return nil
		}); err != nil {
			t.Fatalf("removing a target over the limit: %v", err)
		}
		if err := limits.SetOverride(ctx, e.db, e.who.TenantID, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("plans consumers keys", func(t *testing.T) {
		p, err := e.s.CreatePlan(ctx, e.who, catalog.PlanInput{Name: "p"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.s.CreatePlan(ctx, e.who, catalog.PlanInput{Name: "q"})
		limitErr(t, err, limits.Plans, "")
		c, err := e.s.CreateConsumer(ctx, e.who, catalog.ConsumerInput{Name: "c", Email: "c@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.s.CreateConsumer(ctx, e.who, catalog.ConsumerInput{Name: "d", Email: "d@example.com"})
		limitErr(t, err, limits.Consumers, "")
		k, _, err := e.s.CreateKey(ctx, e.who, catalog.KeyInput{ConsumerID: c.ID, PlanID: p.ID})
		if err != nil {
			t.Fatal(err)
		}
		before := e.count("keys")
		_, _, err = e.s.CreateKey(ctx, e.who, catalog.KeyInput{ConsumerID: c.ID, PlanID: p.ID})
		limitErr(t, err, limits.Keys, "")
		if e.count("keys") != before {
			t.Errorf("a refused key was stored")
		}
		// Revoked keys do not count.
		if err := e.s.RevokeKey(ctx, e.who, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.s.CreateKey(ctx, e.who, catalog.KeyInput{ConsumerID: c.ID, PlanID: p.ID}); err != nil {
			t.Fatalf("key after revoking: %v", err)
		}
	})
	t.Run("routes", func(t *testing.T) {
		api, err := e.s.CreateAPI(ctx, e.who, catalog.APIInput{Name: "R", Slug: "r", BasePath: "/r", UpstreamID: e.up.ID})
		if err != nil {
			t.Fatal(err)
		}
		doc := func(paths ...string) []byte {
			d := "openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths:\n"
			for _, p := range paths {
				d += "  " + p + ":\n    get: {responses: {'200': {description: ok}}}\n"
			}
			return []byte(d)
		}
		_, err = e.s.ImportOpenAPI(ctx, e.who, api.ID, doc("/a", "/b", "/c"))
		limitErr(t, err, limits.Routes, "document")
		if _, err := e.s.ImportOpenAPI(ctx, e.who, api.ID, doc("/a", "/b")); err != nil {
			t.Fatal(err)
		}
		// A re-import replaces the API's routes: they are not counted twice.
		if _, err := e.s.ImportOpenAPI(ctx, e.who, api.ID, doc("/c", "/d")); err != nil {
			t.Fatalf("re-import: %v", err)
		}
	})
}

// TestLimitsConfigBytes caps the tenant's compiled config: a change that
// would grow it past the limit is refused and writes nothing.
func TestLimitsConfigBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newLimitsEnv(t, limits.Defaults())
	rep, err := e.s.TenantLimits(ctx, e.who.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	size := rep.Usage[limits.ConfigBytes]
	if size < 50 {
		t.Fatalf("compiled size %d of a tenant with an upstream", size)
	}
	if err := limits.SetOverride(ctx, e.db, e.who.TenantID, limits.Override{limits.ConfigBytes: size + 100}); err != nil {
		t.Fatal(err)
	}
	var gen int64
	if err := e.db.QueryRow(ctx, `SELECT generation FROM config_changes WHERE tenant_id = $1`, e.who.TenantID).Scan(&gen); err != nil {
		t.Fatal(err)
	}
	le := limitErr(t, e.api(1), limits.ConfigBytes, "")
	if le.Max != size+100 || le.Value <= le.Max {
		t.Errorf("limit error %+v", le)
	}
	var gen2 int64
	if err := e.db.QueryRow(ctx, `SELECT generation FROM config_changes WHERE tenant_id = $1`, e.who.TenantID).Scan(&gen2); err != nil {
		t.Fatal(err)
	}
	if e.count("apis") != 0 || gen2 != gen {
		t.Errorf("refused change was written: %d apis, generation %d -> %d", e.count("apis"), gen, gen2)
	}
	// Over a lowered limit, a change that does not grow the config passes.
	if err := limits.SetOverride(ctx, e.db, e.who.TenantID, limits.Override{limits.ConfigBytes: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.UpdateUpstream(ctx, e.who, e.up.ID, func(in *catalog.UpstreamInput) error {
		in.Name = "v" // one byte shorter
		return nil
	}); err != nil {
		t.Fatalf("shrinking over the limit: %v", err)
	}
	_, err = e.s.UpdateUpstream(ctx, e.who, e.up.ID, func(in *catalog.UpstreamInput) error {
		in.Name = "a longer name"
		return nil
	})
	limitErr(t, err, limits.ConfigBytes, "")
}
