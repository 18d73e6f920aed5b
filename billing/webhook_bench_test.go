package billing_test

import (
	"bytes"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/catalog"
)

// BenchmarkWebhook measures webhook throughput through the real handler
// (HTTP, signature check, one Postgres transaction per event with its
// stripe_events row, the subscription change, the key records and the
// audit entry), with deliveries in parallel over 64 subscriptions, each
// event alternating a failed and a paid invoice so that every one changes
// state. Reported as events/s.
func BenchmarkWebhook(b *testing.B) {
	e := newEnv(b)
	tn := e.tenant("bench", true)
	plan := e.plan(tn, "Pro", &catalog.Price{AmountCents: 1900, Currency: "usd"})
	e.runJobs()
	const nSubs = 64
	type target struct {
		stripeSub string
		n         atomic.Int64
	}
	targets := make([]*target, nSubs)
	for i := range targets {
		dev := e.developer(tn, fmt.Sprintf("bench%d", i))
		sub := e.subscribe(tn, dev, plan.ID)
		if _, err := e.bill.Checkout(e.ctx, tn.ID, sub.ID, "https://x.test/ok", "https://x.test/no"); err != nil {
			b.Fatal(err)
		}
		stripeSub := fmt.Sprintf("sub_bench%d", i)
		if got := e.apply(event{ID: newEventID(), Type: "checkout.session.completed", Account: tn.Account,
			Created: time.Now().Add(-time.Minute), Object: checkoutCompleted(sub.ID, stripeSub, "cus_bench")}); got != "applied" {
			b.Fatal(got)
		}
		if _, _, err := e.cat.CreateSubscriptionKey(e.ctx, tn.who, dev.ConsumerID, sub.ID); err != nil {
			b.Fatal(err)
		}
		targets[i] = &target{stripeSub: stripeSub}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	var next atomic.Int64
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tg := targets[next.Add(1)%nSubs]
			typ, status, paid := "invoice.payment_failed", "open", int64(0)
			if tg.n.Add(1)%2 == 0 {
				typ, status, paid = "invoice.paid", "paid", 1900
			}
			ev := event{ID: newEventID(), Type: typ, Account: tn.Account,
				Object: invoiceObj("in_"+tg.stripeSub, tg.stripeSub, status, 1900, paid)}
			payload := ev.payload()
			req, _ := http.NewRequest(http.MethodPost, e.hook.URL, bytes.NewReader(payload))
			req.Header.Set("Stripe-Signature", signedHeader(payload, whsec, time.Now()))
			resp, err := client.Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				failed.Add(1)
			}
			if resp != nil {
				resp.Body.Close()
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d deliveries failed", failed.Load())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	if s := e.bill.Stats.Snapshot(); s["failed"] != 0 {
		b.Fatalf("stats: %v", s)
	}
}
