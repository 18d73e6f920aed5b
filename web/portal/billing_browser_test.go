package portal_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/tollgate/tollgate/billing"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/tenancy"
)

// TestBillingPageInBrowser renders the billing page in Chromium, as an
// admin of a connected tenant with a past-due subscription, unreported
// usage and an open invoice: the figures, the usage repair, the Stripe
// check and its repair; on a desktop and a phone (screenshots billing-*).
func TestBillingPageInBrowser(t *testing.T) {
	t.Parallel()
	ctx := startChromium(t)
	e, bf := newBillingEnv(t)
	e.signup("browserbill")
	ten, err := tenancy.GetBySlug(context.Background(), e.db, "browserbill")
	if err != nil {
		t.Fatal(err)
	}
	who := audit.Actor{TenantID: ten.ID, Name: "test"}
	if _, err := bf.bill.Connect(context.Background(), who, billing.ConnectInput{AccountID: "acct_browserbill"}); err != nil {
		t.Fatal(err)
	}
	sub := bf.seed(t, e.db, who)

	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	do("log in",
		chromedp.Navigate(e.srv.URL+"/login"), chromedp.WaitVisible(chromedp.CSS(`#f-email`)),
		chromedp.SendKeys(chromedp.CSS(`#f-email`), "owner@browserbill.example"),
		chromedp.SendKeys(chromedp.CSS(`#f-password`), "correct horse battery"),
		chromedp.Click(chromedp.CSS(`main button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`nav`)),
	)
	do("billing from the navigation", chromedp.Click(chromedp.CSS(`nav a[href="/billing"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#failed-payments`)))
	if got := text(`#stripe-state`); got != "connected" {
		t.Errorf("Stripe state %q", got)
	}
	if got := text(`#revenue tbody`); !strings.Contains(got, "19.00 USD") {
		t.Errorf("revenue %q", got)
	}
	if got := text(`#failed-payments tbody`); !strings.Contains(got, "in_failed") || !strings.Contains(got, "ann@example.com") {
		t.Errorf("failed payments %q", got)
	}
	screenshot(t, ctx, "billing")

	do("usage repair", chromedp.Click(chromedp.CSS(`#usage-repair-form button`)), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	if got := text(`.flash`); !strings.Contains(got, "40 requests") {
		t.Errorf("repair flash %q", got)
	}
	if got := text(`#usage-drift-state`); got != "in step" {
		t.Errorf("usage drift after repair: %q", got)
	}

	do("check with Stripe", chromedp.Click(chromedp.CSS(`#check-subscriptions`)),
		chromedp.WaitVisible(chromedp.CSS(`tr.subscription-drift[data-subscription="`+sub.ID+`"]`)))
	if got := text(`tr.subscription-drift`); !strings.Contains(got, "Stripe says active") {
		t.Errorf("drift row %q", got)
	}
	screenshot(t, ctx, "billing-check")
	do("repair", chromedp.Click(chromedp.CSS(`tr.subscription-drift .repair-form button`)), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	if got := text(`.flash`); !strings.Contains(got, "is now active") {
		t.Errorf("repair flash %q", got)
	}

	do("phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(e.srv.URL+"/billing"),
		chromedp.WaitVisible(chromedp.CSS(`#meter-reports`)))
	screenshot(t, ctx, "billing-phone")
}
