package metering

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/billing/stripetest"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/storetest"
)

// fixture is one test's database with a tenant connected to Stripe.
type fixture struct {
	t       *testing.T
	db      *pgxpool.Pool
	tenant  string
	account string
}

var slugs atomic.Int64

// newFixtureTB returns a fresh migrated database (for benchmarks).
func newFixtureTB(tb testing.TB) *pgxpool.Pool { return storetest.NewPool(tb) }

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, db: storetest.NewPool(t)}
	f.tenant, f.account = f.newTenant(true)
	return f
}

// newTenant adds a tenant, connected to a Stripe account when connect is
// true.
func (f *fixture) newTenant(connect bool) (tenant, account string) {
	f.t.Helper()
	f.scan(`INSERT INTO tenants (name, slug) VALUES ('T', $1) RETURNING id::text`,
		[]any{"t-" + strconv.FormatInt(slugs.Add(1), 10)}, &tenant)
	account = "acct_" + tenant[:8]
	if connect {
		f.exec(`INSERT INTO tenant_billing (tenant_id, stripe_account_id) VALUES ($1, $2)`, tenant, account)
	}
	return tenant, account
}

func (f *fixture) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.db.Exec(context.Background(), sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

func (f *fixture) scan(sql string, args []any, dest ...any) {
	f.t.Helper()
	if err := f.db.QueryRow(context.Background(), sql, args...).Scan(dest...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

// subOpts shape a subscription.
type subOpts struct {
	tenant     string // "" means the fixture's
	price      catalog.Price
	noCustomer bool
	noMeter    bool // the price version is not synced
}

// metered is a per-request price with an included tier.
var meteredPrice = catalog.Price{AmountCents: 1900, Currency: "usd", Interval: "month", PerRequestDecimal: "0.05",
	IncludedRequests: 100}

type sub struct {
	tenant, id, app, key, customer string
}

// sub adds a consumer, an app, a plan with one synced price version, a
// subscription of the app on it and one key, and a Stripe customer.
func (f *fixture) sub(o subOpts) sub {
	f.t.Helper()
	s := sub{tenant: o.tenant}
	if s.tenant == "" {
		s.tenant = f.tenant
	}
	var consumer, plan string
	f.scan(`INSERT INTO consumers (tenant_id, name, email) VALUES ($1, 'Dev', 'dev@example.com') RETURNING id::text`,
		[]any{s.tenant}, &consumer)
	f.scan(`INSERT INTO apps (tenant_id, consumer_id, name) VALUES ($1, $2, 'App') RETURNING id::text`,
		[]any{s.tenant, consumer}, &s.app)
	var perReq any
	if o.price.PerRequestDecimal != "" {
		perReq = o.price.PerRequestDecimal
	}
	f.scan(`INSERT INTO plans (tenant_id, name, price_cents, currency, per_request_decimal, included_requests)
		VALUES ($1, 'Plan', $2, $3, $4, $5) RETURNING id::text`,
		[]any{s.tenant, o.price.AmountCents, o.price.Currency, perReq, o.price.IncludedRequests}, &plan)
	raw, err := json.Marshal(o.price)
	if err != nil {
		f.t.Fatal(err)
	}
	var synced any = time.Now()
	if o.noMeter {
		synced = nil
	}
	f.exec(`INSERT INTO plan_prices (tenant_id, plan_id, version, price, meter_event_name, meter_id, synced_at)
		VALUES ($1, $2, 1, $3, 'tollgate_requests', 'mtr_1', $4)`, s.tenant, plan, raw, synced)
	f.scan(`INSERT INTO subscriptions (tenant_id, app_id, consumer_id, plan_id, status, plan_version)
		VALUES ($1, $2, $3, $4, 'active', 1) RETURNING id::text`, []any{s.tenant, s.app, consumer, plan}, &s.id)
	f.scan(`INSERT INTO keys (tenant_id, consumer_id, plan_id, digest, prefix, subscription_id, app_id)
		VALUES ($1, $2, $3, md5(random()::text), 'tg_x', $4, $5) RETURNING id::text`,
		[]any{s.tenant, consumer, plan, s.id, s.app}, &s.key)
	if !o.noCustomer {
		s.customer = "cus_" + s.app[:8]
		f.exec(`INSERT INTO billing_customers (tenant_id, app_id, stripe_customer_id) VALUES ($1, $2, $3)`,
			s.tenant, s.app, s.customer)
	}
	return s
}

// usage adds n requests of a status class to a key's minute, as the
// aggregator does.
func (f *fixture) usage(s sub, minute time.Time, class int, n int64) {
	f.t.Helper()
	f.exec(`INSERT INTO usage_minutes (tenant_id, minute, api_id, key_id, status_class, requests,
			bytes_in, bytes_out, latency_us, latency_hist)
		VALUES ($1, $2, 'api', $3, $4, $5, 0, 0, 0, array_fill(0::bigint, ARRAY[14]))
		ON CONFLICT (tenant_id, minute, api_id, consumer_id, key_id, plan_id, status_class)
		DO UPDATE SET requests = usage_minutes.requests + excluded.requests`,
		s.tenant, minute, s.key, class, n)
}

// report is a meter_reports row as the tests see it.
type report struct {
	Sub        string
	Window     time.Time
	Seq        int
	Value      int64
	Identifier string
	Status     string
	Account    string
	Customer   string
	Event      string
	LastError  string
	Attempts   int
}

func (r report) String() string {
	return fmt.Sprintf("%s %s seq %d = %d (%s)", r.Sub[:8], r.Window.Format("15:04"), r.Seq, r.Value, r.Status)
}

func (f *fixture) reports() []report {
	f.t.Helper()
	rows, err := f.db.Query(context.Background(), `SELECT subscription_id::text, window_start, seq, value, identifier,
		status, stripe_account, stripe_customer, event_name, last_error, attempts FROM meter_reports ORDER BY id`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var out []report
	for rows.Next() {
		var r report
		if err := rows.Scan(&r.Sub, &r.Window, &r.Seq, &r.Value, &r.Identifier, &r.Status, &r.Account, &r.Customer,
			&r.Event, &r.LastError, &r.Attempts); err != nil {
			f.t.Fatal(err)
		}
		r.Window = r.Window.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// served returns the billable requests of every subscription-keyed usage
// row in the database.
func (f *fixture) served() int64 {
	f.t.Helper()
	var n int64
	f.scan(`SELECT coalesce(sum(um.requests), 0)::bigint FROM usage_minutes um
		JOIN keys k ON k.id::text = um.key_id WHERE um.status_class BETWEEN 1 AND 3`, nil, &n)
	return n
}

// producer returns a producer of the fixture's database at the clock now.
func (f *fixture) producer(now func() time.Time) *Producer {
	f.t.Helper()
	p, err := NewProducer(ProducerOptions{DB: f.db, Now: now, Interval: 20 * time.Millisecond})
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

// produce makes one pass over [from, to) at now.
func (f *fixture) produce(p *Producer, from, to time.Time) Produced {
	f.t.Helper()
	res, err := p.Produce(context.Background(), "", from, to, true)
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

// sender returns a sender through the billing Stripe client to
// stripe-mock, and its recorder.
func (f *fixture) sender(opts SenderOptions) (*Sender, *stripetest.Recorder) {
	f.t.Helper()
	client, rec := stripetest.New(f.t)
	if opts.Client == nil {
		opts.Client = client
	}
	opts.DB = f.db
	if opts.Interval == 0 {
		opts.Interval = 20 * time.Millisecond
	}
	s, err := NewSender(opts)
	if err != nil {
		f.t.Fatal(err)
	}
	return s, rec
}

// drain steps s until nothing is pending that it may send.
func (f *fixture) drain(s *Sender) Sent {
	f.t.Helper()
	var total Sent
	for range 1000 {
		res, err := s.Step(context.Background())
		if err != nil {
			f.t.Fatal(err)
		}
		total.Claimed += res.Claimed
		total.Sent += res.Sent
		total.Refused += res.Refused
		total.Expired += res.Expired
		total.Failed += res.Failed
		if res.Claimed == 0 {
			return total
		}
	}
	f.t.Fatal("sender never drained")
	return total
}

// sentEvents groups the meter events recorded by identifier: the values
// sent under each one.
func sentEvents(t *testing.T, rec *stripetest.Recorder) map[string][]int64 {
	t.Helper()
	out := map[string][]int64{}
	for _, q := range rec.Find("POST", "/v1/billing/meter_events") {
		if q.Status != 200 {
			continue
		}
		v, err := strconv.ParseInt(q.Form.Get("payload[value]"), 10, 64)
		if err != nil {
			t.Fatalf("meter event value %q: %v", q.Form.Get("payload[value]"), err)
		}
		id := q.Form.Get("identifier")
		out[id] = append(out[id], v)
	}
	return out
}

// checkOnceEach fails unless every identifier went out with one value
// only, and returns the sum over distinct identifiers: what Stripe counts.
func checkOnceEach(t *testing.T, events map[string][]int64) int64 {
	t.Helper()
	var sum int64
	ids := make([]string, 0, len(events))
	for id := range events {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		vs := events[id]
		for _, v := range vs[1:] {
			if v != vs[0] {
				t.Errorf("identifier %s sent with values %v", id, vs)
			}
		}
		sum += vs[0]
	}
	return sum
}
