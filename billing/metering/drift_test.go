package metering

import (
	"context"
	"testing"
	"time"
)

func TestDriftAndRepair(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	s := f.sub(subOpts{price: meteredPrice})
	now := time.Now().UTC()
	old := now.Truncate(time.Minute).Add(-3 * time.Hour) // beyond a pass's lookback
	recent := now.Truncate(time.Minute).Add(-10 * time.Minute)
	f.usage(s, old, 2, 40)
	f.usage(s, recent, 2, 2)
	p := f.producer(at(now))
	f.produce(p, now.Add(-DefaultLookback), now) // an ordinary pass, not a sweep

	from, to := now.Add(-4*time.Hour), now
	drift, err := Drift(ctx, f.db, f.tenant, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(drift) != 1 || drift[0].Served != 42 || drift[0].Pending != 2 || drift[0].Unreported != 40 || drift[0].Reason != "" {
		t.Fatalf("drift %+v, want 40 of 42 unreported", drift)
	}

	res, err := p.Repair(ctx, f.tenant, from, to)
	if err != nil || res.Reports != 1 || res.Requests != 40 {
		t.Fatalf("repair %+v %v, want one report of 40", res, err)
	}
	if drift, _ := Drift(ctx, f.db, f.tenant, from, to); len(drift) != 0 {
		t.Fatalf("drift after repair %+v (fresh pending rows are not drift)", drift)
	}

	// A report refused by Stripe shows, with Stripe's answer, until it is
	// requeued and sent.
	snd, _ := f.sender(SenderOptions{})
	f.drain(snd)
	f.exec(`UPDATE meter_reports SET status = 'refused', last_error = 'No such meter' WHERE value = 40`)
	drift, _ = Drift(ctx, f.db, f.tenant, from, to)
	if len(drift) != 1 || drift[0].Refused != 40 || drift[0].Sent != 2 || drift[0].LastError != "No such meter" ||
		drift[0].Unreported != 0 {
		t.Fatalf("drift with a refusal %+v", drift)
	}
	if n, err := Requeue(ctx, f.db, f.tenant, from, to); err != nil || n != 1 {
		t.Fatalf("requeue %d %v", n, err)
	}
	f.drain(snd)
	if drift, _ := Drift(ctx, f.db, f.tenant, from, to); len(drift) != 0 {
		t.Fatalf("drift after requeue %+v", drift)
	}

	// Over-reporting (a window reported that served nothing) and pending
	// rows nobody sends show.
	f.exec(`INSERT INTO meter_reports (tenant_id, subscription_id, stripe_account, stripe_customer, event_name,
			window_start, seq, value, identifier, status, created_at)
		VALUES ($1, $2, $3, $4, 'tollgate_requests', $5, 0, 9, 'tg:test:over', 'sent', now()),
			($1, $2, $3, $4, 'tollgate_requests', $6, 0, 1, 'tg:test:stuck', 'pending', now() - interval '1 hour')`,
		f.tenant, s.id, f.account, s.customer, old.Add(time.Minute), old.Add(2*time.Minute))
	drift, _ = Drift(ctx, f.db, f.tenant, from, to)
	if len(drift) != 1 || drift[0].Unreported != -10 || drift[0].OldestPending == nil {
		t.Fatalf("drift with over-reporting %+v", drift)
	}

	// Another tenant sees none of it.
	other, _ := f.newTenant(true)
	if drift, err := Drift(ctx, f.db, other, from, to); err != nil || len(drift) != 0 {
		t.Fatalf("other tenant's drift %+v %v", drift, err)
	}

	st, err := ReportStats(ctx, f.db, f.tenant, from, to, DefaultWindow)
	if err != nil {
		t.Fatal(err)
	}
	if st.Sent != 3 || st.SentRequests != 51 || st.Pending != 1 || st.PendingRequests != 1 || st.Lag.Count != 2 ||
		st.OldestPending.IsZero() {
		t.Fatalf("stats %+v", st)
	}
}
