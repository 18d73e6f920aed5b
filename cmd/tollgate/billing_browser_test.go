package main

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBillingInBrowser shows a paid subscription in the developer portal
// of a platform with billing on (stripe-mock), in a real browser, through
// its states: waiting for payment ("Complete payment" to /billing/{id}),
// past due (the banner with the grace deadline and "Fix payment"), and
// paid ("Manage billing", the estimate of the next invoice with its lines,
// the invoice with its link). Screenshots go to
// web/testdata/screenshots/billing-devportal-*.png.
func TestBillingInBrowser(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	p := startPlatformWith(t, platformOpts{stripe: true})
	back := httptest.NewServer(demoBackend("a"))
	defer back.Close()
	acme := p.setupTenant("acme", []string{back.URL}, 100)
	p.portalTenant(acme, 1000)
	var paid idOf
	p.api("POST", "/v1/plans", acme.token, map[string]any{"name": "Pro", "public": true,
		"quota": map[string]any{"requests": 1000, "period": "month"}, "api_ids": []string{acme.api},
		"price": map[string]any{"currency": "usd", "amount": 1900, "interval": "month"}}, 201, &paid)
	p.api("PUT", "/v1/billing/stripe", acme.token, map[string]any{"account_id": "acct_acme", "grace_period_seconds": 259200}, 200, nil)
	email := "browser-payer@example.com"
	tok := p.portalDeveloper("acme", email)
	var app idOf
	p.portal("acme", "POST", "/api/apps", tok, map[string]any{"name": "Billing dashboard"}, 201, &app)
	var sub subscribed
	p.portal("acme", "POST", "/api/apps/"+app.ID+"/subscriptions", tok, map[string]any{"plan_id": paid.ID}, 201, &sub)
	p.eventually(15*time.Second, "a checkout URL", func() bool {
		p.portal("acme", "GET", "/api/subscriptions/"+sub.ID, tok, nil, 200, &sub)
		return sub.CheckoutURL != nil
	})
	_, port, _ := strings.Cut(strings.TrimPrefix(p.control, "http://"), ":")
	portal := "http://acme.developers.localhost:" + port
	appPage := portal + "/apps/" + app.ID

	browse(t, ctx, "sign in",
		chromedp.Navigate(portal+"/login"), chromedp.WaitVisible(chromedp.CSS(`#login-form`)),
		chromedp.SendKeys(chromedp.CSS(`#f-email`), email), chromedp.SendKeys(chromedp.CSS(`#f-password`), "correct horse battery"),
		chromedp.Click(chromedp.CSS(`#login-button`)), chromedp.WaitVisible(chromedp.CSS(`#nav-apps`)))
	browse(t, ctx, "payment required", chromedp.Navigate(appPage), chromedp.WaitVisible(chromedp.CSS(`#pay-`+sub.ID)))
	if href, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`#pay-`+sub.ID), "href")); err != nil || href.Value != "/billing/"+sub.ID {
		t.Errorf("Complete payment links to %q (%v)", href.Value, err)
	}
	shoot(t, ctx, "billing-devportal-01-payment-required")

	invoice := func(status string, amountPaid int64) map[string]any {
		now := time.Now()
		return map[string]any{"id": "in_browser1", "object": "invoice", "status": status, "currency": "usd",
			"amount_due": 1900, "amount_paid": amountPaid, "created": now.Unix(),
			"hosted_invoice_url": "https://invoice.stripe.com/i/in_browser1",
			"parent":             map[string]any{"subscription_details": map[string]any{"subscription": "sub_browser1"}},
			"lines": map[string]any{"data": []any{map[string]any{"period": map[string]any{
				"start": now.Unix(), "end": now.AddDate(0, 1, 0).Unix()}}}}}
	}
	p.deliver("acct_acme", "checkout.session.completed", map[string]any{"id": "cs_browser1", "object": "checkout.session",
		"mode": "subscription", "payment_status": "paid", "client_reference_id": sub.ID,
		"subscription": "sub_browser1", "customer": "cus_browser1"})
	p.deliver("acct_acme", "invoice.payment_failed", invoice("open", 0))
	browse(t, ctx, "past due", chromedp.Navigate(appPage), chromedp.WaitVisible(chromedp.CSS(`#past-due-`+sub.ID)))
	if got := text(t, ctx, `#past-due-`+sub.ID); !strings.Contains(got, "keep working until") || !strings.Contains(got, "Fix payment") {
		t.Errorf("past-due banner %q", got)
	}
	shoot(t, ctx, "billing-devportal-02-past-due")

	p.deliver("acct_acme", "invoice.paid", invoice("paid", 1900))
	browse(t, ctx, "paid", chromedp.Navigate(appPage), chromedp.WaitVisible(chromedp.CSS(`#estimate-`+sub.ID)))
	if got := text(t, ctx, `#estimate-total-`+sub.ID); got != "$19.00" {
		t.Errorf("estimate total %q", got)
	}
	if got := text(t, ctx, `#invoices-`+sub.ID); !strings.Contains(got, "$19.00") || !strings.Contains(got, "paid") ||
		!strings.Contains(got, "View invoice") {
		t.Errorf("invoices %q", got)
	}
	if got := text(t, ctx, `#manage-billing-`+sub.ID); got != "Manage billing" {
		t.Errorf("manage billing %q", got)
	}
	shoot(t, ctx, "billing-devportal-03-paid")
	browse(t, ctx, "phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(appPage),
		chromedp.WaitVisible(chromedp.CSS(`#invoices-`+sub.ID)))
	shoot(t, ctx, "billing-devportal-04-paid-phone")
}
