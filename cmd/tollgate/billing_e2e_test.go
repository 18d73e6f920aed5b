package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/billing"
	"github.com/tollgate/tollgate/billing/stripetest"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/tenancy"
)

// TestBillingEndToEnd drives a paid plan through the whole stack: a
// control plane and two workers from startPlatform, billing on the same
// database with stripe-mock behind it and signed webhooks. A developer
// subscribes in the portal (payment required), pays through Checkout (the
// webhook activates the subscription), takes a key that works on both
// workers; a failed payment whose grace period is over makes both workers
// answer 402 with the billing link, and the paid invoice makes the key
// work again within a second. Billing is not wired into `tollgate control`
// yet, so this test builds the billing service itself over the platform's
// database; the key records reach the workers through the control plane's
// publisher as they will once it is.
func TestBillingEndToEnd(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	ctx := context.Background()
	back := httptest.NewServer(demoBackend("a"))
	defer back.Close()
	acme := p.setupTenant("acme", []string{back.URL}, 100)
	p.portalTenant(acme, 1000)
	var paid idOf
	p.api("POST", "/v1/plans", acme.token, map[string]any{"name": "Pro", "public": true,
		"quota": map[string]any{"requests": 1000, "period": "month"}, "api_ids": []string{acme.api},
		"price": map[string]any{"currency": "usd", "amount": 1900, "interval": "month"}}, 201, &paid)
	ten, err := tenancy.GetBySlug(ctx, p.db, "acme")
	if err != nil {
		t.Fatal(err)
	}

	// Billing over the platform's database, with stripe-mock.
	client, rec := stripetest.New(t)
	cat := catalog.New(p.db, []byte("unused: billing issues no keys"), true)
	cat.BillingURL = "http://{slug}.developers.localhost/billing/{subscription}"
	const whsec = "whsec_e2e"
	bill, err := billing.New(billing.Config{WebhookSecret: whsec}, p.db, cat, client,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var clock atomic.Pointer[time.Time]
	bill.Now = func() time.Time {
		if c := clock.Load(); c != nil {
			return *c
		}
		return time.Now()
	}
	hooks := httptest.NewServer(bill.Webhook())
	defer hooks.Close()
	grace := 3600
	who := audit.Actor{TenantID: ten.ID, Name: "test"}
	if _, err := bill.Connect(ctx, who, billing.ConnectInput{AccountID: "acct_acme", GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	runner := &billing.Runner{Billing: bill, SweepEvery: -1}
	if n, err := runner.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	if _, err := runner.RunDue(ctx); err != nil {
		t.Fatal(err)
	}

	// The developer subscribes in the portal: payment required.
	tok := p.portalDeveloper("acme", "payer@example.com")
	var app idOf
	p.portal("acme", "POST", "/api/apps", tok, map[string]any{"name": "Paid integration"}, 201, &app)
	var sub subscribed
	p.portal("acme", "POST", "/api/apps/"+app.ID+"/subscriptions", tok, map[string]any{"plan_id": paid.ID}, 201, &sub)
	if sub.Status != "payment_required" || sub.Key != nil {
		t.Fatalf("subscription: %+v", sub)
	}
	url, err := bill.Checkout(ctx, ten.ID, sub.ID, "http://acme.developers.localhost/apps", "http://acme.developers.localhost/apps")
	if err != nil || url == "" {
		t.Fatalf("checkout: %q %v", url, err)
	}

	deliver := func(typ string, obj map[string]any) {
		t.Helper()
		payload, _ := json.Marshal(map[string]any{"id": "evt_" + randHex(8), "object": "event", "type": typ,
			"api_version": "2025-04-30.basil", "created": time.Now().Unix(), "livemode": false, "account": "acct_acme",
			"data": map[string]any{"object": obj}})
		req, _ := http.NewRequest("POST", hooks.URL, bytes.NewReader(payload))
		req.Header.Set("Stripe-Signature", stripetest.Sign(payload, whsec, time.Time{}))
		resp, err := p.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"applied"`) {
			t.Fatalf("%s: %d %s", typ, resp.StatusCode, body)
		}
	}
	invoice := func(status string, amountPaid int64) map[string]any {
		return map[string]any{"id": "in_e2e1", "object": "invoice", "status": status, "currency": "usd",
			"amount_due": 1900, "amount_paid": amountPaid, "created": time.Now().Unix(),
			"parent": map[string]any{"subscription_details": map[string]any{"subscription": "sub_e2e1"}}}
	}

	deliver("checkout.session.completed", map[string]any{"id": "cs_e2e1", "object": "checkout.session",
		"mode": "subscription", "payment_status": "paid", "client_reference_id": sub.ID,
		"subscription": "sub_e2e1", "customer": "cus_e2e1"})
	var now subscribed
	p.portal("acme", "GET", "/api/subscriptions/"+sub.ID, tok, nil, 200, &now)
	if now.Status != "active" {
		t.Fatalf("after checkout: %+v", now)
	}
	var k struct{ ID, Key string }
	p.portal("acme", "POST", "/api/subscriptions/"+sub.ID+"/keys", tok, nil, 201, &k)
	const host = "acme.localhost"
	for w := range p.workers {
		p.eventually(5*time.Second, "the paid key works", func() bool { return p.call(w, host, "/echo/a", k.Key).status == 200 })
	}

	// The renewal fails and the grace period is already over (the clock is
	// put back two hours for the one-hour grace): 402 on both workers.
	past := time.Now().Add(-2 * time.Hour)
	clock.Store(&past)
	deliver("invoice.payment_failed", invoice("open", 0))
	clock.Store(nil)
	for w := range p.workers {
		p.eventually(5*time.Second, "402 after the grace period", func() bool {
			a := p.call(w, host, "/echo/b", k.Key)
			return a.status == 402 && strings.Contains(a.body, "payment-required") &&
				strings.Contains(a.body, "http://acme.developers.localhost/billing/"+sub.ID)
		})
	}
	p.portal("acme", "GET", "/api/subscriptions/"+sub.ID, tok, nil, 200, &now)
	if now.Status != "past_due" {
		t.Errorf("developer sees %s", now.Status)
	}

	// Paid: the key works again at once.
	deliver("invoice.paid", invoice("paid", 1900))
	for w := range p.workers {
		took := p.eventually(5*time.Second, "the key works after payment", func() bool {
			return p.call(w, host, "/echo/c", k.Key).status == 200
		})
		if took > time.Second {
			t.Errorf("worker %d served the paid key only after %v", w, took)
		}
	}
	for _, q := range rec.Requests() {
		if q.Method == http.MethodPost && q.IdempotencyKey == "" {
			t.Errorf("%s %s without an idempotency key", q.Method, q.Path)
		}
		if !strings.HasPrefix(q.Path, "/v1/accounts") && q.Account != "acct_acme" {
			t.Errorf("%s %s on account %q", q.Method, q.Path, q.Account)
		}
	}
}
