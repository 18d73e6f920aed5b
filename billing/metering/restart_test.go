package metering

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/billing/stripetest"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/storetest"
	"github.com/tollgate/tollgate/services/usage"
)

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestMeteredUsageAcrossAControlPlaneRestart drives the whole path: usage
// batches on the workers' Redis stream, the usage aggregator, the producer
// and the sender against stripe-mock. The control plane dies in the middle
// of sending (meter events accepted but not marked, others in flight),
// usage keeps arriving while it is down, and it comes back as two replicas. Each identifier goes out
// with one value only, and what Stripe counts (one value per identifier)
// equals what the gateway served.
func TestMeteredUsageAcrossAControlPlaneRestart(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rdb, keys := storetest.NewRedis(t)
	subs := []sub{f.sub(subOpts{price: meteredPrice}), f.sub(subOpts{price: meteredPrice}),
		f.sub(subOpts{price: meteredPrice}), f.sub(subOpts{price: meteredPrice})}
	unmetered := f.sub(subOpts{price: meteredPrice, noCustomer: true})

	base := time.Now().UTC().Truncate(time.Minute).Add(-2 * time.Hour)
	c := &clock{now: base}
	client, rec := stripetest.New(t)
	// The first control plane dies right after Stripe accepted its 20th
	// meter event, with others in flight: its database sessions end with
	// their transactions open, so Stripe has events Tollgate never marked.
	ctx1, stop := context.WithCancel(context.Background())
	var answered atomic.Int64
	rec.Base = roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		time.Sleep(2 * time.Millisecond)
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err == nil && answered.Add(1) == 20 {
			_, _ = f.db.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_locks
				WHERE relation = 'meter_reports'::regclass AND pid <> pg_backend_pid()`)
			stop()
		}
		return resp, err
	})

	var batch atomic.Int64
	var served, pushed int64
	push := func(s sub, minute time.Time, class int, n int64) {
		t.Helper()
		row := proxycfg.UsageRow{Minute: minute.Unix(), TenantID: s.tenant, APIID: "api", KeyID: s.key,
			StatusClass: class, Requests: n}
		raw, err := json.Marshal([]proxycfg.UsageRow{row})
		if err != nil {
			t.Fatal(err)
		}
		if err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: keys.UsageStream(), Values: []any{
			proxycfg.UsageField, string(raw), proxycfg.UsageBatchField, "w1:" + strconv.FormatInt(batch.Add(1), 10),
		}}).Err(); err != nil {
			t.Fatal(err)
		}
		pushed += n
		if class <= 3 && s.customer != "" {
			served += n
		}
	}
	minute := func(s sub, i int) {
		m := base.Add(time.Duration(i) * time.Minute)
		push(s, m, 2, int64(10+i))
		push(s, m, 3, 2)
		push(s, m, 4, 5) // 429s and 401s: never billed
		push(s, m, 5, 1)
	}
	// controlPlane starts one replica: an aggregator and a metering runner.
	controlPlane := func(ctx context.Context, name string) *sync.WaitGroup {
		agg, err := usage.NewAggregator(usage.AggregatorOptions{DB: f.db, Redis: rdb, Keys: keys, Consumer: name,
			Block: 10 * time.Millisecond, ClaimIdle: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		r, err := New(Options{DB: f.db, Client: client,
			Producer: ProducerOptions{Now: c.Now, Interval: 10 * time.Millisecond, Lookback: time.Hour},
			Sender:   SenderOptions{Now: c.Now, Interval: 10 * time.Millisecond, Batch: 10, Concurrency: 4}})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _ = agg.Run(ctx) }()
		go func() { defer wg.Done(); _ = r.Run(ctx) }()
		return &wg
	}
	closeWindow := func(i int) { // the clock passes window i's end and settle delay
		c.mu.Lock()
		c.now = base.Add(time.Duration(i+1)*time.Minute + DefaultSettle + time.Second)
		c.mu.Unlock()
	}

	// Before the restart: 15 windows, late usage for window 2.
	first := controlPlane(ctx1, "cp-1")
	for i := range 15 {
		for _, s := range append(subs, unmetered) {
			minute(s, i)
		}
		if i == 8 {
			push(subs[0], base.Add(2*time.Minute), 2, 7)
		}
		closeWindow(i)
		time.Sleep(15 * time.Millisecond)
	}
	first.Wait() // killed by the transport, mid-send
	before := len(sentEvents(t, rec))

	// While it is down the workers keep sending usage, late usage too.
	for i := 15; i < 20; i++ {
		for _, s := range append(subs, unmetered) {
			minute(s, i)
		}
	}
	push(subs[1], base.Add(5*time.Minute), 2, 11)
	push(subs[2], base.Add(14*time.Minute), 3, 4)

	// After the restart: two replicas.
	ctx2, stop2 := context.WithCancel(context.Background())
	defer stop2()
	a, b := controlPlane(ctx2, "cp-1"), controlPlane(ctx2, "cp-2")
	for i := 20; i < 30; i++ {
		for _, s := range append(subs, unmetered) {
			minute(s, i)
		}
		if i == 25 {
			push(subs[3], base.Add(21*time.Minute), 2, 3)
		}
	}
	closeWindow(30)
	waitFor(t, func() bool {
		var total, sent, open int64
		f.scan(`SELECT coalesce(sum(requests), 0)::bigint FROM usage_minutes`, nil, &total)
		f.scan(`SELECT coalesce(sum(value) FILTER (WHERE status = 'sent'), 0)::bigint,
			count(*) FILTER (WHERE status <> 'sent') FROM meter_reports`, nil, &sent, &open)
		return total == pushed && sent == served && open == 0
	})
	stop2()
	a.Wait()
	b.Wait()

	events := sentEvents(t, rec)
	if before >= len(events) {
		t.Fatalf("the first control plane sent everything (%d) before it died", before)
	}
	resent := 0
	for _, vs := range events {
		if len(vs) > 1 {
			resent++
		}
	}
	if sum := checkOnceEach(t, events); sum != served {
		t.Errorf("Stripe counts %d requests (one value per identifier), the gateway served %d", sum, served)
	}
	checkOneValueEachAttempt(t, rec)
	reports := f.reports()
	if len(reports) != len(events) {
		t.Errorf("%d reports, %d identifiers sent", len(reports), len(events))
	}
	if f.served() != served+unmeteredServed(f, unmetered) {
		t.Errorf("served in the database %d, pushed %d (+ unmetered)", f.served(), served)
	}
	drift, err := Drift(context.Background(), f.db, f.tenant, base.Add(-time.Hour), base.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(drift) != 1 || drift[0].SubscriptionID != unmetered.id || drift[0].Reason != ReasonNoCustomer {
		t.Errorf("drift after the restart %+v, want only the subscription without a customer", drift)
	}
	if resent == 0 {
		t.Error("no identifier was sent again after the crash")
	}
	t.Logf("%d identifiers, %d accepted before the crash, %d sent more than once; %d requests served and counted once",
		len(events), before, resent, served)
}

// unmeteredServed is what the subscription without a customer was served.
func unmeteredServed(f *fixture, s sub) int64 {
	f.t.Helper()
	var n int64
	f.scan(`SELECT coalesce(sum(requests), 0)::bigint FROM usage_minutes WHERE key_id = $1 AND status_class BETWEEN 1 AND 3`,
		[]any{s.key}, &n)
	return n
}

// checkOneValueEachAttempt fails if any attempt of an identifier, answered
// or not (a request cut off by a stop may still have reached Stripe),
// carried another value.
func checkOneValueEachAttempt(t *testing.T, rec *stripetest.Recorder) {
	t.Helper()
	values := map[string]string{}
	for _, q := range rec.Find("POST", "/v1/billing/meter_events") {
		id, v := q.Form.Get("identifier"), q.Form.Get("payload[value]")
		if prev, ok := values[id]; ok && prev != v {
			t.Errorf("identifier %s sent with values %s and %s", id, prev, v)
		}
		values[id] = v
	}
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
