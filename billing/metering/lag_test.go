package metering

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/billing/stripetest"
)

func TestLagRecorder(t *testing.T) {
	t.Parallel()
	r := NewLagRecorder(100)
	for i := 1; i <= 1000; i++ {
		r.Record(time.Duration(i) * time.Millisecond)
	}
	f := r.Figures()
	// The last 100 lags: 901ms..1000ms.
	if f.Count != 1000 || f.P50 != 950*time.Millisecond || f.P99 != 999*time.Millisecond || f.Max != time.Second {
		t.Fatalf("figures %s", f)
	}
	if f := NewLagRecorder(0).Figures(); f.Count != 0 || f.P99 != 0 {
		t.Fatalf("empty figures %s", f)
	}
}

// TestMeterEventLag measures the lag from a window's end to Stripe's
// acceptance of its reports, with the default settle delay and intervals,
// for a window of 100 subscriptions. The clock runs at real speed, shifted
// so that the window ends a second after the test starts.
func TestMeterEventLag(t *testing.T) {
	if testing.Short() {
		t.Skip("takes the settle delay (15s) and more")
	}
	t.Parallel()
	f := newFixture(t)
	subs := make([]sub, 100)
	for i := range subs {
		subs[i] = f.sub(subOpts{price: meteredPrice})
	}
	windowEnd := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	offset := windowEnd.Add(-time.Second).Sub(time.Now())
	now := func() time.Time { return time.Now().Add(offset) }
	for i, s := range subs {
		f.usage(s, windowEnd.Add(-time.Minute), 2, int64(1+i))
	}
	client, _ := stripetest.New(t)
	r, err := New(Options{DB: f.db, Client: client, Producer: ProducerOptions{Now: now}, Sender: SenderOptions{Now: now}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = r.Run(ctx) }()
	waitFor(t, func() bool {
		var sent int
		f.scan(`SELECT count(*) FROM meter_reports WHERE status = 'sent'`, nil, &sent)
		return sent == len(subs)
	})
	cancel()
	wg.Wait()
	fig := r.Sender().Lag().Figures()
	st, err := ReportStats(context.Background(), f.db, f.tenant, windowEnd.Add(-time.Hour), windowEnd, DefaultWindow)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("meter-event lag, window end to accepted (settle %s, producer every %s): sender %s; from the table %s",
		DefaultSettle, DefaultProducerInterval, fig, st.Lag)
	if fig.Count != int64(len(subs)) || st.Lag.Count != int64(len(subs)) {
		t.Fatalf("lags of %d and %d reports, want %d", fig.Count, st.Lag.Count, len(subs))
	}
	// DESIGN.md: meter events reach Stripe within a minute of their window
	// closing.
	if fig.P99 < DefaultSettle || fig.Max > DefaultSettle+DefaultProducerInterval+10*time.Second {
		t.Fatalf("lag %s outside [settle, settle + interval + 10s]", fig)
	}
}

// BenchmarkSender measures the meter events per second a Sender gets
// accepted by stripe-mock through the billing Stripe client: across many
// accounts without a rate limit, and to one account under the default
// per-account limit.
func BenchmarkSender(b *testing.B) {
	for _, bc := range []struct {
		name     string
		accounts int
		rate     int
	}{
		{"accounts=50,rate=unlimited", 50, -1},
		{"accounts=1,rate=default", 1, 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			db := newFixtureTB(b)
			ctx := context.Background()
			// b.N pending rows, spread over the accounts.
			if _, err := db.Exec(ctx, `INSERT INTO tenants (id, name, slug) VALUES
				('00000000-0000-4000-8000-00000000000a', 'T', 'bench')`); err != nil {
				b.Fatal(err)
			}
			if _, err := db.Exec(ctx, `INSERT INTO meter_reports (tenant_id, subscription_id, stripe_account,
					stripe_customer, event_name, window_start, seq, value, identifier)
				SELECT '00000000-0000-4000-8000-00000000000a', gen_random_uuid(), 'acct_' || (i % $2), 'cus_' || i,
					'tollgate_requests', date_trunc('minute', now()) - interval '1 hour', 0, 1 + i % 9, 'tg:bench:' || i
				FROM generate_series(1, $1) AS i`, b.N, bc.accounts); err != nil {
				b.Fatal(err)
			}
			client, _ := stripetest.New(b)
			s, err := NewSender(SenderOptions{DB: db, Client: client, AccountRate: bc.rate})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			sent := 0
			for sent < b.N {
				res, err := s.Step(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if res.Claimed == 0 {
					b.Fatalf("sent %d of %d", sent, b.N)
				}
				sent += res.Sent
			}
			el := time.Since(start)
			b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
			if b.N >= 1000 {
				b.Logf("%d events in %s: %.0f events/s (concurrency %d, batch %d)", b.N, el.Round(time.Millisecond),
					float64(b.N)/el.Seconds(), DefaultConcurrency, DefaultBatch)
			}
		})
	}
}
