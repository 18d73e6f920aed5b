package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/billing/stripetest"
)

// platformStripe is the Stripe of a platform started with billing on.
type platformStripe struct {
	// rec records every request the control plane sent to Stripe.
	rec *stripetest.Recorder
	// webhookSecret is TOLLGATE_STRIPE_WEBHOOK_SECRET.
	webhookSecret string
	// clock, when set, is billing's now (grace periods).
	clock atomic.Pointer[time.Time]
}

// startStripe builds the control plane's billing the way `tollgate
// control` does (newControlBilling from TOLLGATE_STRIPE_* variables), with
// the API URL pointing at a recording reverse proxy in front of
// stripe-mock, so the test sees every request the platform sends.
func (p *platform) startStripe(db *pgxpool.Pool, secret []byte, log *slog.Logger) *controlBilling {
	t := p.t
	t.Helper()
	mock, err := url.Parse(stripetest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	ps := &platformStripe{rec: &stripetest.Recorder{}, webhookSecret: "whsec_e2e_" + randHex(8)}
	proxy := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(mock); r.Out.Host = mock.Host },
		Transport: ps.rec,
	})
	t.Cleanup(proxy.Close)
	env := map[string]string{
		"TOLLGATE_STRIPE_SECRET_KEY":     stripetest.SecretKey,
		"TOLLGATE_STRIPE_WEBHOOK_SECRET": ps.webhookSecret,
		"TOLLGATE_STRIPE_API_URL":        proxy.URL,
	}
	bill, err := newControlBilling(func(k string) string { return env[k] }, db, secret, true, log)
	if err != nil {
		t.Fatal(err)
	}
	if !bill.Service.Enabled() || bill.Metering == nil {
		t.Fatal("billing is off with a Stripe key")
	}
	bill.Service.Now = func() time.Time {
		if c := ps.clock.Load(); c != nil {
			return *c
		}
		return time.Now()
	}
	p.stripe = ps
	return bill
}

// deliver posts a Stripe event of the tenant's connected account, signed
// with the webhook secret, to the control plane's /webhooks/stripe, and
// fails unless it was applied.
func (p *platform) deliver(account, typ string, obj map[string]any) {
	p.t.Helper()
	payload, _ := json.Marshal(map[string]any{"id": "evt_" + randHex(8), "object": "event", "type": typ,
		"api_version": "2025-04-30.basil", "created": time.Now().Unix(), "livemode": false, "account": account,
		"data": map[string]any{"object": obj}})
	req, _ := http.NewRequest("POST", p.control+"/webhooks/stripe", bytes.NewReader(payload))
	req.Header.Set("Stripe-Signature", stripetest.Sign(payload, p.stripe.webhookSecret, time.Time{}))
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"applied"`) {
		p.t.Fatalf("%s: %d %s", typ, resp.StatusCode, body)
	}
}

// TestBillingEndToEnd drives a paid plan through the whole stack, with the
// billing the control plane builds from TOLLGATE_STRIPE_* (stripe-mock
// behind a recording proxy) and two workers: the tenant connects its
// account through /v1; a developer subscribes in the portal and gets a
// Stripe Checkout URL (once the runner has synced the plan's prices); the
// webhook activates the subscription and its key works on both workers; a
// failed payment whose grace period is over makes both workers answer 402
// with the stable billing link on the control plane, which leads to the
// portal's /billing/{id}, which opens Stripe's Customer Portal for the
// signed-in developer; the paid invoice makes the key work again within a
// second; the developer sees the invoice and an estimate of the next one.
// Every Stripe call carries the account and an idempotency key.
func TestBillingEndToEnd(t *testing.T) {
	t.Parallel()
	p := startPlatformWith(t, platformOpts{stripe: true})
	back := httptest.NewServer(demoBackend("a"))
	defer back.Close()
	acme := p.setupTenant("acme", []string{back.URL}, 100)
	p.portalTenant(acme, 1000)
	var paid idOf
	p.api("POST", "/v1/plans", acme.token, map[string]any{"name": "Pro", "public": true,
		"quota": map[string]any{"requests": 1000, "period": "month"}, "api_ids": []string{acme.api},
		"price": map[string]any{"currency": "usd", "amount": 1900, "interval": "month"}}, 201, &paid)
	p.api("PUT", "/v1/billing/stripe", acme.token, map[string]any{"account_id": "acct_acme", "grace_period_seconds": 3600}, 200, nil)

	// The developer subscribes in the portal: payment required, with a
	// Stripe Checkout URL once the control plane's runner has synced the
	// plan to Stripe.
	tok := p.portalDeveloper("acme", "payer@example.com")
	var app idOf
	p.portal("acme", "POST", "/api/apps", tok, map[string]any{"name": "Paid integration"}, 201, &app)
	var sub subscribed
	p.portal("acme", "POST", "/api/apps/"+app.ID+"/subscriptions", tok, map[string]any{"plan_id": paid.ID}, 201, &sub)
	if sub.Status != "payment_required" || sub.Key != nil {
		t.Fatalf("subscription: %+v", sub)
	}
	p.eventually(15*time.Second, "a checkout URL", func() bool {
		p.portal("acme", "GET", "/api/subscriptions/"+sub.ID, tok, nil, 200, &sub)
		return sub.CheckoutURL != nil
	})
	if !strings.HasPrefix(*sub.CheckoutURL, "https://checkout.stripe.com/") {
		t.Fatalf("checkout_url %q", *sub.CheckoutURL)
	}
	sessions := p.stripe.rec.Find(http.MethodPost, "/v1/checkout/sessions")
	if len(sessions) == 0 || sessions[0].Account != "acct_acme" || sessions[0].Form.Get("client_reference_id") != sub.ID ||
		sessions[0].Form.Get("success_url") != "http://acme.developers.localhost/apps/"+app.ID+"?checkout=success" {
		t.Fatalf("checkout sessions: %+v", sessions)
	}

	invoice := func(status string, amountPaid int64) map[string]any {
		return map[string]any{"id": "in_e2e1", "object": "invoice", "status": status, "currency": "usd",
			"amount_due": 1900, "amount_paid": amountPaid, "created": time.Now().Unix(),
			"hosted_invoice_url": "https://invoice.stripe.com/i/in_e2e1",
			"parent":             map[string]any{"subscription_details": map[string]any{"subscription": "sub_e2e1"}}}
	}
	p.deliver("acct_acme", "checkout.session.completed", map[string]any{"id": "cs_e2e1", "object": "checkout.session",
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

	// The renewal fails and the grace period is already over (billing's
	// clock is put back two hours for the one-hour grace): 402 on both
	// workers, with the stable billing link of the control plane.
	past := time.Now().Add(-2 * time.Hour)
	p.stripe.clock.Store(&past)
	p.deliver("acct_acme", "invoice.payment_failed", invoice("open", 0))
	p.stripe.clock.Store(nil)
	link := p.control + "/billing/subscriptions/" + sub.ID
	for w := range p.workers {
		p.eventually(5*time.Second, "402 after the grace period", func() bool {
			a := p.call(w, host, "/echo/b", k.Key)
			return a.status == 402 && strings.Contains(a.body, "payment-required") && strings.Contains(a.body, link)
		})
	}
	p.portal("acme", "GET", "/api/subscriptions/"+sub.ID, tok, nil, 200, &now)
	if now.Status != "past_due" {
		t.Errorf("developer sees %s", now.Status)
	}
	// The stable link leads to the portal's /billing/{id}, which sends the
	// signed-in developer to a fresh Customer Portal session (and a
	// signed-out one to sign in first).
	noRedirect := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u, host, session string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", u, nil)
		if host != "" {
			req.Host = host
		}
		if session != "" {
			req.AddCookie(&http.Cookie{Name: "tgp_session", Value: session})
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := get(link, "", "")
	cu, _ := url.Parse(p.control)
	portalPage := "http://acme.developers.localhost:" + cu.Port() + "/billing/" + sub.ID
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != portalPage {
		t.Fatalf("stable link: %d to %q, want %q", resp.StatusCode, resp.Header.Get("Location"), portalPage)
	}
	if resp := get(p.control+"/billing/"+sub.ID, "acme.developers.localhost", ""); resp.StatusCode != http.StatusSeeOther ||
		!strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") {
		t.Errorf("signed-out billing page: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = get(p.control+"/billing/"+sub.ID, "acme.developers.localhost", tok)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "https://") {
		t.Errorf("billing page of a past-due subscription: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := p.stripe.rec.Find(http.MethodPost, "/v1/billing_portal/sessions"); len(got) != 1 || got[0].Account != "acct_acme" {
		t.Errorf("customer portal sessions: %+v", got)
	}

	// Paid: the key works again at once.
	p.deliver("acct_acme", "invoice.paid", invoice("paid", 1900))
	for w := range p.workers {
		took := p.eventually(5*time.Second, "the key works after payment", func() bool {
			return p.call(w, host, "/echo/c", k.Key).status == 200
		})
		if took > time.Second {
			t.Errorf("worker %d served the paid key only after %v", w, took)
		}
	}

	// The developer sees the invoice and the estimate of the next one.
	var invs struct {
		Items []struct {
			ID, Status, Currency string
			AmountPaid           int64  `json:"amount_paid"`
			HostedInvoiceURL     string `json:"hosted_invoice_url"`
		}
	}
	p.portal("acme", "GET", "/api/subscriptions/"+sub.ID+"/invoices", tok, nil, 200, &invs)
	if len(invs.Items) != 1 || invs.Items[0].ID != "in_e2e1" || invs.Items[0].Status != "paid" || invs.Items[0].AmountPaid != 1900 ||
		invs.Items[0].HostedInvoiceURL == "" {
		t.Errorf("invoices: %+v", invs)
	}
	var est struct {
		Currency string
		Total    int64
		Lines    []struct{ Kind string }
	}
	p.portal("acme", "GET", "/api/subscriptions/"+sub.ID+"/estimate", tok, nil, 200, &est)
	if est.Currency != "usd" || est.Total != 1900 || len(est.Lines) != 1 || est.Lines[0].Kind != "flat" {
		t.Errorf("estimate: %+v", est)
	}

	reqs := p.stripe.rec.Requests()
	if len(reqs) == 0 {
		t.Fatal("no Stripe requests recorded")
	}
	for _, q := range reqs {
		if q.Method == http.MethodPost && !strings.HasPrefix(q.IdempotencyKey, "tg:") {
			t.Errorf("%s %s without an idempotency key", q.Method, q.Path)
		}
		if !strings.HasPrefix(q.Path, "/v1/accounts") && q.Account != "acct_acme" {
			t.Errorf("%s %s on account %q", q.Method, q.Path, q.Account)
		}
	}
}
