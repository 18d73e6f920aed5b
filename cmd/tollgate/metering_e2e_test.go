package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/billing"
	"github.com/tollgate/tollgate/billing/metering"
	"github.com/tollgate/tollgate/billing/rating"
	"github.com/tollgate/tollgate/billing/stripetest"
	"github.com/tollgate/tollgate/services/catalog"
)

// TestMeteringEndToEnd sends traffic through two workers with a key of a
// developer subscription on a per-request price, over its rate limit, and
// restarts the metering (producer and sender) in the middle: Stripe
// (stripe-mock behind a recorder) counts exactly the requests the client
// saw served, each identifier with one value, never the 429s; the
// developer's estimate rates the same count.
func TestMeteringEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := startPlatform(t)
	back := httptest.NewServer(demoBackend("m"))
	defer back.Close()
	s := p.setupTenant("metered", []string{back.URL}, 10)
	const host = "metered.localhost"

	// The key belongs to a developer's subscription that went through
	// Checkout: a Stripe customer for its app, a synced price version on
	// the tenant's meter.
	price := catalog.Price{Currency: "usd", Interval: "month", PerRequestDecimal: "0.05", IncludedRequests: 10}
	raw, err := json.Marshal(price)
	if err != nil {
		t.Fatal(err)
	}
	var tenant, app, sub string
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(p.db.QueryRow(ctx, `SELECT id::text FROM tenants WHERE slug = 'metered'`).Scan(&tenant))
	must(p.db.QueryRow(ctx, `INSERT INTO apps (tenant_id, consumer_id, name) VALUES ($1, $2, 'App') RETURNING id::text`,
		tenant, s.consumer).Scan(&app))
	_, err = p.db.Exec(ctx, `INSERT INTO plan_prices (tenant_id, plan_id, version, price, meter_id, meter_event_name, synced_at)
		VALUES ($1, $2, 1, $3, 'mtr_e2e', $4, now())`, tenant, s.plan, raw, billing.MeterEventName)
	must(err)
	must(p.db.QueryRow(ctx, `INSERT INTO subscriptions (tenant_id, app_id, consumer_id, plan_id, status, plan_version)
		VALUES ($1, $2, $3, $4, 'active', 1) RETURNING id::text`, tenant, app, s.consumer, s.plan).Scan(&sub))
	_, err = p.db.Exec(ctx, `UPDATE keys SET subscription_id = $2, app_id = $3 WHERE id = $1`, s.keyID, sub, app)
	must(err)
	_, err = p.db.Exec(ctx, `INSERT INTO tenant_billing (tenant_id, stripe_account_id) VALUES ($1, 'acct_e2emetered')`, tenant)
	must(err)
	_, err = p.db.Exec(ctx, `INSERT INTO billing_customers (tenant_id, app_id, stripe_customer_id) VALUES ($1, $2, 'cus_e2e')`,
		tenant, app)
	must(err)
	for w := range p.workers {
		p.eventually(5*time.Second, "worker serves the key", func() bool {
			return p.call(w, host, "/echo/warmup", s.key).status == 200
		})
	}
	waitWindow()

	// The metering of the control plane, with its clock two minutes ahead:
	// every minute the workers are in is already closed, so usage that
	// lands after its window was reported goes out as the next sequence.
	client, rec := stripetest.New(t)
	ahead := func() time.Time { return time.Now().Add(2 * time.Minute) }
	start := func() (stop func()) {
		r, err := metering.New(metering.Options{DB: p.db, Client: client,
			Producer: metering.ProducerOptions{Now: ahead, Interval: 50 * time.Millisecond},
			Sender:   metering.SenderOptions{Now: ahead, Interval: 50 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Run(rctx) }()
		return func() { cancel(); wg.Wait() }
	}

	served, refused := 2, 0 // the warm-up calls
	burst := func() {
		for i := range 25 {
			switch st := p.call(i%2, host, "/echo/x", s.key).status; st {
			case 200:
				served++
			case 429:
				refused++
			default:
				t.Fatalf("status %d", st)
			}
		}
	}
	stop := start()
	for round := range 4 {
		burst()
		if round == 1 {
			stop() // the control plane restarts
			stop = start()
		}
		waitWindow()
	}
	if refused == 0 {
		t.Fatal("no request was over the rate limit")
	}
	var reported int64
	p.eventually(30*time.Second, "Stripe has every served request", func() bool {
		var open int
		must(p.db.QueryRow(ctx, `SELECT coalesce(sum(value) FILTER (WHERE status = 'sent'), 0)::bigint,
			count(*) FILTER (WHERE status <> 'sent') FROM meter_reports WHERE subscription_id = $1`, sub).
			Scan(&reported, &open))
		return reported >= int64(served) && open == 0
	})
	stop()

	// Stripe counts the first value of each identifier.
	values := map[string]int64{}
	for _, q := range rec.Find("POST", "/v1/billing/meter_events") {
		v, err := strconv.ParseInt(q.Form.Get("payload[value]"), 10, 64)
		must(err)
		id := q.Form.Get("identifier")
		if prev, ok := values[id]; ok && prev != v {
			t.Errorf("identifier %s sent with %d and %d", id, prev, v)
		}
		values[id] = v
		if q.Account != "acct_e2emetered" || q.Form.Get("payload[stripe_customer_id]") != "cus_e2e" {
			t.Errorf("meter event on %q for %q", q.Account, q.Form.Get("payload[stripe_customer_id]"))
		}
	}
	var counted int64
	for _, v := range values {
		counted += v
	}
	if counted != int64(served) || reported != int64(served) {
		t.Fatalf("Stripe counts %d (reports %d); the client was served %d (and refused %d)", counted, reported, served, refused)
	}
	var metered429 int64
	must(p.db.QueryRow(ctx, `SELECT coalesce(sum(requests), 0)::bigint FROM usage_minutes WHERE key_id = $1 AND status_class = 4`,
		s.keyID).Scan(&metered429))
	if metered429 != int64(refused) {
		t.Errorf("usage holds %d refused requests, the client saw %d", metered429, refused)
	}

	// The reports go where billing says the subscription's usage goes.
	target, err := billing.SubscriptionMeterTarget(ctx, p.db, tenant, sub)
	must(err)
	rows, err := p.db.Query(ctx, `SELECT DISTINCT stripe_account, stripe_customer, event_name FROM meter_reports`)
	must(err)
	for rows.Next() {
		var acct, cus, event string
		must(rows.Scan(&acct, &cus, &event))
		if acct != target.Account || cus != target.Customer || event != target.EventName {
			t.Errorf("report to %s %s %s, billing's target is %+v", acct, cus, event, target)
		}
	}
	rows.Close()

	// The developer's estimate rates the same count with the same code.
	est, err := rating.Estimate(ctx, p.db, tenant, sub, time.Now())
	must(err)
	want, err := rating.Rate(price, int64(served))
	must(err)
	if est.Served != int64(served) || est.Total != want.Total {
		t.Errorf("estimate %d requests, %d; want %d, %d", est.Served, est.Total, served, want.Total)
	}
	t.Logf("served %d, refused %d (not billed); %d identifiers; estimate %d %s", served, refused, len(values), est.Total,
		est.Currency)
}
