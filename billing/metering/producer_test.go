package metering

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// at returns a fixed clock.
func at(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestIdentifier(t *testing.T) {
	t.Parallel()
	const (
		tenant = "00000000-0000-4000-8000-00000000000a"
		sub    = "00000000-0000-4000-8000-0000000000b1"
	)
	w := time.Date(2026, 11, 30, 12, 34, 0, 0, time.UTC)
	id := Identifier(tenant, sub, "acct_1", "cus_1", "tollgate_requests", w, 0)
	if id != Identifier(tenant, sub, "acct_1", "cus_1", "tollgate_requests", w, 0) {
		t.Fatal("identifier is not deterministic")
	}
	if !strings.HasPrefix(id, "tg:"+sub+":1796042040:0:") {
		t.Fatalf("identifier %q", id)
	}
	long := Identifier(tenant, sub, strings.Repeat("a", 255), strings.Repeat("c", 255), strings.Repeat("e", 100),
		w, 1<<31-1)
	if len(long) > MaxIdentifierLen || len(id) > MaxIdentifierLen {
		t.Fatalf("identifier of %d characters, Stripe allows %d", len(long), MaxIdentifierLen)
	}
	seen := map[string]bool{id: true}
	for _, other := range []string{
		Identifier(tenant, sub, "acct_1", "cus_1", "tollgate_requests", w, 1),
		Identifier(tenant, sub, "acct_1", "cus_1", "tollgate_requests", w.Add(time.Minute), 0),
		Identifier(tenant, "00000000-0000-4000-8000-0000000000b2", "acct_1", "cus_1", "tollgate_requests", w, 0),
		Identifier(tenant, sub, "acct_2", "cus_1", "tollgate_requests", w, 0),
		Identifier(tenant, sub, "acct_1", "cus_2", "tollgate_requests", w, 0),
		Identifier(tenant, sub, "acct_1", "cus_1", "other_meter", w, 0),
	} {
		if seen[other] {
			t.Fatalf("identifier %q repeats", other)
		}
		seen[other] = true
	}
}

func TestWindowsProduceOneReportEach(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.sub(subOpts{price: meteredPrice})
	other := f.sub(subOpts{price: meteredPrice})
	base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	f.usage(s, base, 2, 10)
	f.usage(s, base, 3, 5)
	f.usage(s, base, 1, 1)
	f.usage(s, base.Add(time.Minute), 2, 20)
	f.usage(s, base.Add(3*time.Minute), 2, 7)
	f.usage(other, base.Add(time.Minute), 2, 4)
	f.usage(s, base.Add(9*time.Minute), 2, 3) // not closed at base+10m (settle)

	now := base.Add(10 * time.Minute)
	p := f.producer(at(now))
	res := f.produce(p, base.Add(-time.Hour), now)
	if res.Reports != 4 || res.Requests != 16+20+7+4 || res.Expired != 0 {
		t.Fatalf("produced %+v, want 4 reports of 47 requests", res)
	}
	got := f.reports()
	want := []struct {
		s      sub
		window time.Time
		value  int64
	}{
		{s, base, 16}, {other, base.Add(time.Minute), 4}, {s, base.Add(time.Minute), 20}, {s, base.Add(3 * time.Minute), 7},
	}
	if len(got) != len(want) {
		t.Fatalf("reports %v", got)
	}
	for _, w := range want {
		i := slices.IndexFunc(got, func(r report) bool { return r.Sub == w.s.id && r.Window.Equal(w.window) })
		if i < 0 {
			t.Fatalf("no report of %s at %s in %v", w.s.id, w.window, got)
		}
		r := got[i]
		ident := Identifier(f.tenant, w.s.id, f.account, w.s.customer, "tollgate_requests", w.window, 0)
		if r.Value != w.value || r.Seq != 0 || r.Status != StatusPending || r.Identifier != ident ||
			r.Account != f.account || r.Customer != w.s.customer || r.Event != "tollgate_requests" {
			t.Errorf("report %+v, want value %d seq 0 pending %s", r, w.value, ident)
		}
	}

	// A second pass finds nothing new; once the last window has settled,
	// it goes out too.
	if res := f.produce(p, base.Add(-time.Hour), now); res.Reports != 0 {
		t.Fatalf("second pass produced %+v", res)
	}
	later := f.producer(at(now.Add(DefaultSettle)))
	if res := f.produce(later, base, now.Add(time.Hour)); res.Reports != 1 || res.Requests != 3 {
		t.Fatalf("settled window produced %+v, want 1 report of 3", res)
	}
}

func TestOnlyServedRequestsAreBilled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		class int
		n     int64
		want  int64
	}{
		{name: "1xx (WebSocket upgrades) are served", class: 1, n: 3, want: 3},
		{name: "2xx are served", class: 2, n: 5, want: 5},
		{name: "3xx are served", class: 3, n: 7, want: 7},
		{name: "4xx (401, 402, 403, 429 refusals) are not", class: 4, n: 11, want: 0},
		{name: "5xx are not", class: 5, n: 13, want: 0},
	}
	f := newFixture(t)
	base := time.Now().UTC().Truncate(time.Minute).Add(-30 * time.Minute)
	subs := make([]sub, len(tests))
	for i, tc := range tests {
		subs[i] = f.sub(subOpts{price: meteredPrice})
		f.usage(subs[i], base, tc.class, tc.n)
	}
	f.produce(f.producer(at(base.Add(5*time.Minute))), base, base.Add(time.Minute))
	got := map[string]int64{}
	for _, r := range f.reports() {
		got[r.Sub] += r.Value
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got[subs[i].id] != tc.want {
				t.Errorf("reported %d, want %d", got[subs[i].id], tc.want)
			}
		})
	}
}

func TestLateUsageGoesOutAsTheNextSequence(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.sub(subOpts{price: meteredPrice})
	base := time.Now().UTC().Truncate(time.Minute).Add(-20 * time.Minute)
	now := base.Add(5 * time.Minute)
	p := f.producer(at(now))
	snd, rec := f.sender(SenderOptions{})

	f.usage(s, base, 2, 10)
	f.produce(p, base, now)
	f.drain(snd)
	first := f.reports()
	if len(first) != 1 || first[0].Status != StatusSent || first[0].Value != 10 {
		t.Fatalf("first report %v", first)
	}
	var sentAt time.Time
	f.scan(`SELECT sent_at FROM meter_reports WHERE seq = 0`, nil, &sentAt)

	// Late usage of the same window: only the difference, under the next
	// sequence, as a new identifier.
	f.usage(s, base, 2, 5)
	f.usage(s, base, 4, 100) // refused late traffic is still not billed
	if res := f.produce(p, base, now); res.Reports != 1 || res.Requests != 5 {
		t.Fatalf("late pass produced %+v, want 1 report of 5", res)
	}
	f.usage(s, base, 3, 3)
	if res := f.produce(p, base, now); res.Reports != 1 || res.Requests != 3 {
		t.Fatalf("second late pass produced %+v, want 1 report of 3", res)
	}
	f.drain(snd)

	got := f.reports()
	if len(got) != 3 {
		t.Fatalf("reports %v", got)
	}
	for i, want := range []int64{10, 5, 3} {
		r := got[i]
		ident := Identifier(f.tenant, s.id, f.account, s.customer, "tollgate_requests", base, i)
		if r.Seq != i || r.Value != want || r.Identifier != ident || r.Status != StatusSent {
			t.Errorf("report %d: %+v, want seq %d value %d %s sent", i, r, i, want, ident)
		}
	}
	if got[0] != first[0] {
		t.Errorf("seq 0 changed: %+v, was %+v", got[0], first[0])
	}
	var sentAt2 time.Time
	f.scan(`SELECT sent_at FROM meter_reports WHERE seq = 0`, nil, &sentAt2)
	if !sentAt2.Equal(sentAt) {
		t.Errorf("seq 0 was sent again: sent_at %s, was %s", sentAt2, sentAt)
	}
	events := sentEvents(t, rec)
	if len(events) != 3 || checkOnceEach(t, events) != 18 {
		t.Errorf("meter events %v, want three identifiers worth 18", events)
	}
	for id, vs := range events {
		if len(vs) != 1 {
			t.Errorf("identifier %s sent %d times", id, len(vs))
		}
	}
}

func TestUnmeteredUsageIsNotReported(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	base := time.Now().UTC().Truncate(time.Minute).Add(-30 * time.Minute)
	noCustomer := f.sub(subOpts{price: meteredPrice, noCustomer: true})
	noMeter := f.sub(subOpts{price: meteredPrice, noMeter: true})
	flat := f.sub(subOpts{price: meteredPrice})
	f.exec(`UPDATE plan_prices SET price = '{"amount":1900,"currency":"usd","interval":"month"}'
		WHERE plan_id = (SELECT plan_id FROM subscriptions WHERE id = $1)`, flat.id)
	disconnectedTenant, _ := f.newTenant(true)
	disconnected := f.sub(subOpts{tenant: disconnectedTenant, price: meteredPrice})
	f.exec(`UPDATE tenant_billing SET deauthorized_at = now() WHERE tenant_id = $1`, disconnectedTenant)
	unconnectedTenant, _ := f.newTenant(false)
	unconnected := f.sub(subOpts{tenant: unconnectedTenant, price: meteredPrice})
	for _, s := range []sub{noCustomer, noMeter, flat, disconnected, unconnected} {
		f.usage(s, base, 2, 10)
	}
	// A key without a subscription (issued by the tenant with /v1/keys).
	f.exec(`INSERT INTO usage_minutes (tenant_id, minute, api_id, key_id, status_class, requests, bytes_in, bytes_out,
		latency_us, latency_hist) VALUES ($1, $2, 'api', gen_random_uuid()::text, 2, 10, 0, 0, 0, '{}'),
		($1, $2, 'api', 'not-a-uuid', 2, 10, 0, 0, 0, '{}')`, f.tenant, base)

	if res := f.produce(f.producer(at(base.Add(5*time.Minute))), base, base.Add(time.Minute)); res.Reports != 0 {
		t.Fatalf("produced %+v for unmetered usage: %v", res, f.reports())
	}

	ctx := context.Background()
	reasons := map[string]string{}
	for _, tenant := range []string{f.tenant, disconnectedTenant, unconnectedTenant} {
		rows, err := Drift(ctx, f.db, tenant, base.Add(-time.Hour), base.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range rows {
			reasons[d.SubscriptionID] = d.Reason
			if d.Served != 10 || d.Unreported != 10 {
				t.Errorf("drift %+v, want 10 served and unreported", d)
			}
		}
	}
	want := map[string]string{noCustomer.id: ReasonNoCustomer, noMeter.id: ReasonNoMeter,
		disconnected.id: ReasonDeauthorized, unconnected.id: ReasonNoAccount}
	for id, reason := range want {
		if reasons[id] != reason {
			t.Errorf("drift reason of %s = %q, want %q", id, reasons[id], reason)
		}
	}
	if _, ok := reasons[flat.id]; ok || len(reasons) != len(want) {
		t.Errorf("drift reasons %v: the flat-priced subscription has nothing to meter", reasons)
	}
}

func TestWindowsPastStripesLimitAreFlaggedExpired(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.sub(subOpts{price: meteredPrice})
	now := time.Now().UTC()
	old := now.Truncate(time.Minute).Add(-36 * 24 * time.Hour)
	f.usage(s, old, 2, 42)
	p := f.producer(at(now))

	// A sweep does not reach that far; Repair does, and flags the window.
	if res := f.produce(p, now.Add(-DefaultSweep), now); res.Reports != 0 {
		t.Fatalf("sweep produced %+v", res)
	}
	res, err := p.Repair(context.Background(), f.tenant, now.Add(-40*24*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if res.Reports != 1 || res.Expired != 1 || res.Requests != 42 {
		t.Fatalf("repair produced %+v, want one expired report of 42", res)
	}

	// A row that was pending when Stripe still took it, and waited past
	// the limit (Stripe down for weeks), is expired by the sender.
	recent := now.Truncate(time.Minute).Add(-time.Hour)
	f.usage(s, recent, 2, 8)
	f.produce(p, recent, now)
	snd, rec := f.sender(SenderOptions{Now: at(now.Add(36 * 24 * time.Hour))})
	if res := f.drain(snd); res.Expired != 1 || res.Sent != 0 {
		t.Fatalf("sender %+v, want one expired", res)
	}
	if n := len(rec.Find("POST", "/v1/billing/meter_events")); n != 0 {
		t.Fatalf("%d meter events sent for expired windows", n)
	}
	got := f.reports()
	if len(got) != 2 || got[0].Status != StatusExpired || got[1].Status != StatusExpired ||
		!strings.Contains(got[0].LastError, "35 days") || !strings.Contains(got[1].LastError, "35 days") {
		t.Fatalf("reports %+v, want both expired with the reason", got)
	}
	drift, err := Drift(context.Background(), f.db, f.tenant, now.Add(-40*24*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(drift) != 1 || drift[0].Expired != 50 || drift[0].Unreported != 0 {
		t.Fatalf("drift %+v, want 50 expired", drift)
	}
}

// TestConcurrentProducersNeverDoubleReport runs producers side by side,
// without the lock (the UNIQUE constraints alone) and with it, while usage
// keeps arriving, late included: every window's reports add up to what it
// served, in sequences without gaps.
func TestConcurrentProducersNeverDoubleReport(t *testing.T) {
	t.Parallel()
	for _, noLock := range []bool{true, false} {
		name := "with the lock"
		if noLock {
			name = "without the lock"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			subs := []sub{f.sub(subOpts{price: meteredPrice}), f.sub(subOpts{price: meteredPrice}),
				f.sub(subOpts{price: meteredPrice})}
			base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
			now := base.Add(20 * time.Minute)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for range 3 {
				p := f.producer(at(now))
				p.noLock = noLock
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						if _, err := p.Produce(ctx, "", base, now, false); err != nil && ctx.Err() == nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			rng := rand.New(rand.NewPCG(1, 2))
			for range 300 {
				s := subs[rng.IntN(len(subs))]
				f.usage(s, base.Add(time.Duration(rng.IntN(15))*time.Minute), 2, int64(1+rng.IntN(9)))
			}
			cancel()
			wg.Wait()
			f.produce(f.producer(at(now)), base, now)

			type win struct {
				sub   string
				start int64
			}
			reported := map[win]int64{}
			seqs := map[win][]int{}
			for _, r := range f.reports() {
				k := win{r.Sub, r.Window.Unix()}
				reported[k] += r.Value
				seqs[k] = append(seqs[k], r.Seq)
			}
			rows, err := f.db.Query(context.Background(), `SELECT k.subscription_id::text, um.minute, sum(um.requests)::bigint
				FROM usage_minutes um JOIN keys k ON k.id::text = um.key_id GROUP BY 1, 2`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				var (
					k      win
					minute time.Time
					served int64
				)
				if err := rows.Scan(&k.sub, &minute, &served); err != nil {
					t.Fatal(err)
				}
				k.start = minute.Unix()
				n++
				if reported[k] != served {
					t.Errorf("window %v: reported %d, served %d", k, reported[k], served)
				}
				s := seqs[k]
				slices.Sort(s)
				for i, seq := range s {
					if seq != i {
						t.Errorf("window %v: sequences %v", k, s)
						break
					}
				}
			}
			if n != len(reported) {
				t.Errorf("%d windows served, %d reported", n, len(reported))
			}
			late := 0
			for _, s := range seqs {
				late += len(s) - 1
			}
			t.Logf("%d windows, %d reports of late usage (seq > 0)", n, late)
		})
	}
}
