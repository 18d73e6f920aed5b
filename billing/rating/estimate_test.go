package rating

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/storetest"
)

// seed makes a tenant with a plan, an app subscribed to it and a key of the
// subscription, and returns the ids.
type seeded struct{ tenant, plan, sub, key string }

func seed(t *testing.T, db *pgxpool.Pool, plan catalog.Price, version *catalog.Price) seeded {
	t.Helper()
	ctx := context.Background()
	var s seeded
	var consumer, app string
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.QueryRow(ctx, `INSERT INTO tenants (name, slug) VALUES ('T', 't-' || substr(md5(random()::text), 1, 10))
		RETURNING id::text`).Scan(&s.tenant))
	must(db.QueryRow(ctx, `INSERT INTO consumers (tenant_id, name, email) VALUES ($1, 'Dev', 'dev@example.com')
		RETURNING id::text`, s.tenant).Scan(&consumer))
	must(db.QueryRow(ctx, `INSERT INTO apps (tenant_id, consumer_id, name) VALUES ($1, $2, 'App') RETURNING id::text`,
		s.tenant, consumer).Scan(&app))
	if plan.Interval == "" {
		plan.Interval = "month"
	}
	var perReq any
	if plan.PerRequestDecimal != "" {
		perReq = plan.PerRequestDecimal
	}
	must(db.QueryRow(ctx, `INSERT INTO plans (tenant_id, name, price_cents, currency, price_interval, per_request_decimal,
			included_requests) VALUES ($1, 'Metered', $2, $3, $4, $5, $6) RETURNING id::text`,
		s.tenant, plan.AmountCents, plan.Currency, plan.Interval, perReq, plan.IncludedRequests).Scan(&s.plan))
	var ver any
	if version != nil {
		raw, err := json.Marshal(version)
		must(err)
		must(exec(db, `INSERT INTO plan_prices (tenant_id, plan_id, version, price, meter_event_name, synced_at)
			VALUES ($1, $2, 3, $3, 'tollgate_requests', now())`, s.tenant, s.plan, raw))
		ver = 3
	}
	must(db.QueryRow(ctx, `INSERT INTO subscriptions (tenant_id, app_id, consumer_id, plan_id, status, plan_version)
		VALUES ($1, $2, $3, $4, 'active', $5) RETURNING id::text`, s.tenant, app, consumer, s.plan, ver).Scan(&s.sub))
	must(db.QueryRow(ctx, `INSERT INTO keys (tenant_id, consumer_id, plan_id, digest, prefix, subscription_id, app_id)
		VALUES ($1, $2, $3, md5(random()::text), 'tg_x', $4, $5) RETURNING id::text`,
		s.tenant, consumer, s.plan, s.sub, app).Scan(&s.key))
	return s
}

func exec(db *pgxpool.Pool, sql string, args ...any) error {
	_, err := db.Exec(context.Background(), sql, args...)
	return err
}

func addUsage(t *testing.T, db *pgxpool.Pool, tenant, key string, minute time.Time, class int, n int64) {
	t.Helper()
	if err := exec(db, `INSERT INTO usage_minutes (tenant_id, minute, api_id, key_id, status_class, requests,
			bytes_in, bytes_out, latency_us, latency_hist)
		VALUES ($1, $2, 'api', $3, $4, $5, 0, 0, 0, array_fill(0::bigint, ARRAY[14]))
		ON CONFLICT (tenant_id, minute, api_id, consumer_id, key_id, plan_id, status_class)
		DO UPDATE SET requests = usage_minutes.requests + excluded.requests`,
		tenant, minute, key, class, n); err != nil {
		t.Fatal(err)
	}
}

func TestEstimate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	now := time.Date(2026, 11, 20, 12, 30, 45, 0, time.UTC)

	t.Run("calendar month, plan version price, served classes only", func(t *testing.T) {
		// The plan's current price differs from the version subscribed to:
		// the version wins.
		s := seed(t, db, catalog.Price{AmountCents: 500, Currency: "usd", Interval: "month", PerRequestDecimal: "1"},
			&catalog.Price{AmountCents: 1900, Currency: "usd", Interval: "month", PerRequestDecimal: "0.05", IncludedRequests: 1000})
		nov := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		addUsage(t, db, s.tenant, s.key, nov, 2, 800)                    // first minute of the period
		addUsage(t, db, s.tenant, s.key, nov.Add(-time.Minute), 2, 7777) // October: not this period
		addUsage(t, db, s.tenant, s.key, now.Truncate(time.Minute), 2, 1000)
		addUsage(t, db, s.tenant, s.key, now.Truncate(time.Minute), 3, 200)
		addUsage(t, db, s.tenant, s.key, now.Truncate(time.Minute), 1, 30)
		addUsage(t, db, s.tenant, s.key, now.Truncate(time.Minute), 4, 9999) // refused: not billed
		addUsage(t, db, s.tenant, s.key, now.Truncate(time.Minute), 5, 8888) // failed: not billed
		est, err := Estimate(ctx, db, s.tenant, s.sub, now)
		if err != nil {
			t.Fatal(err)
		}
		if est.Served != 2030 || est.PlanVersion != 3 || est.StripePeriod {
			t.Fatalf("served %d version %d stripe %v, want 2030 3 false", est.Served, est.PlanVersion, est.StripePeriod)
		}
		if !est.PeriodStart.Equal(nov) || !est.PeriodEnd.Equal(nov.AddDate(0, 1, 0)) {
			t.Fatalf("period %s–%s", est.PeriodStart, est.PeriodEnd)
		}
		// 1900 flat + 1030 requests past the first 1000 at 0.05 = 51.5 → 52.
		if est.Total != 1952 || est.Currency != "usd" {
			t.Fatalf("total %d %s, want 1952 usd (lines %+v)", est.Total, est.Currency, est.Lines)
		}
		want, _ := Rate(catalog.Price{AmountCents: 1900, Currency: "usd", Interval: "month", PerRequestDecimal: "0.05",
			IncludedRequests: 1000}, 2030)
		if est.Total != want.Total || len(est.Lines) != len(want.Lines) {
			t.Fatalf("estimate is not Rate's answer: %+v vs %+v", est.Quote, want)
		}
	})

	t.Run("stripe period, rolled forward when the renewal has not arrived", func(t *testing.T) {
		s := seed(t, db, catalog.Price{Currency: "usd", Interval: "month", PerRequestDecimal: "2"}, nil)
		start := time.Date(2026, 10, 15, 8, 0, 30, 0, time.UTC)
		if err := exec(db, `UPDATE subscriptions SET current_period_start = $2, current_period_end = $3 WHERE id = $1`,
			s.sub, start, start.AddDate(0, 1, 0)); err != nil {
			t.Fatal(err)
		}
		renewed := start.AddDate(0, 1, 0)                                      // 2026-11-15 08:00:30
		addUsage(t, db, s.tenant, s.key, renewed.Truncate(time.Minute), 2, 50) // minute starts before the period
		addUsage(t, db, s.tenant, s.key, renewed.Truncate(time.Minute).Add(time.Minute), 2, 7)
		est, err := Estimate(ctx, db, s.tenant, s.sub, now)
		if err != nil {
			t.Fatal(err)
		}
		if !est.StripePeriod || !est.PeriodStart.Equal(renewed) || !est.PeriodEnd.Equal(renewed.AddDate(0, 1, 0)) {
			t.Fatalf("period %s–%s stripe %v", est.PeriodStart, est.PeriodEnd, est.StripePeriod)
		}
		if est.Served != 7 || est.Total != 14 || est.PlanVersion != 0 {
			t.Fatalf("served %d total %d version %d, want 7 14 0", est.Served, est.Total, est.PlanVersion)
		}
	})

	t.Run("free plan", func(t *testing.T) {
		s := seed(t, db, catalog.Price{}, nil)
		if err := exec(db, `UPDATE plans SET price_cents = NULL, currency = NULL WHERE id = $1`, s.plan); err != nil {
			t.Fatal(err)
		}
		addUsage(t, db, s.tenant, s.key, now.Truncate(time.Minute), 2, 10)
		est, err := Estimate(ctx, db, s.tenant, s.sub, now)
		if err != nil {
			t.Fatal(err)
		}
		if est.Served != 10 || est.Total != 0 || len(est.Lines) != 0 || est.Currency != "" {
			t.Fatalf("free plan estimate %+v", est)
		}
	})

	t.Run("another tenant's subscription is not found", func(t *testing.T) {
		a := seed(t, db, catalog.Price{Currency: "usd", PerRequestDecimal: "1"}, nil)
		b := seed(t, db, catalog.Price{Currency: "usd", PerRequestDecimal: "1"}, nil)
		if _, err := Estimate(ctx, db, b.tenant, a.sub, now); !errors.Is(err, fault.ErrNotFound) {
			t.Fatalf("err = %v, want not found", err)
		}
		if _, err := Estimate(ctx, db, b.tenant, "nope", now); !errors.Is(err, fault.ErrNotFound) {
			t.Fatalf("err = %v, want not found", err)
		}
	})
}

func TestCalendarPeriod(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC) // a Friday
	tests := []struct {
		interval   string
		start, end time.Time
	}{
		{"day", time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)},
		{"week", time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)},
		{"month", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{"year", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.interval, func(t *testing.T) {
			s, e := CalendarPeriod(tc.interval, at)
			if !s.Equal(tc.start) || !e.Equal(tc.end) {
				t.Errorf("CalendarPeriod(%q) = %s–%s, want %s–%s", tc.interval, s, e, tc.start, tc.end)
			}
		})
	}
}
