package portal_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestDeveloperPortalControlsInBrowser walks the tenant's side of the
// developer portal in Chromium: the settings page (and an error next to its
// field), the approval queue on a desktop and a phone, a decision, and a
// developer's consumer page. Screenshots land in screenshotDir.
func TestDeveloperPortalControlsInBrowser(t *testing.T) {
	t.Parallel()
	ctx := startChromium(t)
	e := newEnv(t, envOpts{})
	owner := e.signup("acme")
	s := owner.seed("http://127.0.0.1:9")
	owner.get("/apis/" + s.api)
	want(t, owner.post("/apis/"+s.api, url.Values{"name": {"Orders"}, "slug": {"orders"}, "base_path": {"/orders"},
		"upstream_id": {s.upstream}, "auth": {"key"}, "strip_base_path": {"on"}, "timeout_ms": {"0"}, "published": {"on"}}),
		http.StatusSeeOther, "publish")
	ada := e.seedDeveloper(owner, "acme", s, "ada@lovelace.example")
	e.seedDeveloper(owner, "acme", s, "grace@hopper.example")

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
		chromedp.SendKeys(chromedp.CSS(`#f-email`), "owner@acme.example"),
		chromedp.SendKeys(chromedp.CSS(`#f-password`), "correct horse battery"),
		chromedp.Click(chromedp.CSS(`main button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`nav`)),
	)
	if got := text(`#pending-count`); !strings.Contains(got, "4") {
		t.Errorf("navigation badge = %q, want 4 waiting", got)
	}

	do("developer portal page", chromedp.Navigate(e.srv.URL+"/developer-portal"), chromedp.WaitVisible(chromedp.CSS(`#f-accent_color`)))
	screenshot(t, ctx, "devportal-controls-settings")
	do("bad colour",
		chromedp.SetValue(chromedp.CSS(`#f-accent_color`), "chartreuse-ish"),
		chromedp.Click(chromedp.CSS(`form[action="/developer-portal"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#e-accent_color`)),
	)
	screenshot(t, ctx, "devportal-controls-settings-error")
	if got := text(`#e-accent_color`); !strings.Contains(got, "colour") {
		t.Errorf("error next to the colour = %q", got)
	}
	do("good colour",
		chromedp.SetValue(chromedp.CSS(`#f-accent_color`), "#0e7490"),
		chromedp.Click(chromedp.CSS(`form[action="/developer-portal"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)),
	)
	if got := e.portalSettings("acme").AccentColor; got != "#0e7490" {
		t.Errorf("accent colour saved as %q", got)
	}

	do("approvals", chromedp.Navigate(e.srv.URL+"/approvals"), chromedp.WaitVisible(chromedp.CSS(`#pending-developers`)))
	screenshot(t, ctx, "devportal-controls-approvals")
	do("approve ada",
		chromedp.Click(chromedp.CSS(`form[action="/approvals/developers/`+ada.developer+`/approve"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)),
	)
	if got := text(`.flash`); !strings.Contains(got, "ada@lovelace.example is approved") {
		t.Errorf("flash after approving = %q", got)
	}
	if got := text(`#pending-count`); !strings.Contains(got, "3") {
		t.Errorf("navigation badge after a decision = %q, want 3", got)
	}

	do("developer's consumer page", chromedp.Navigate(e.srv.URL+"/consumers/"+ada.consumer), chromedp.WaitVisible(chromedp.CSS(`#subscriptions`)))
	screenshot(t, ctx, "devportal-controls-consumer")
	do("consumers", chromedp.Navigate(e.srv.URL+"/consumers"), chromedp.WaitVisible(chromedp.CSS(`table`)))
	screenshot(t, ctx, "devportal-controls-consumers")
	do("plans", chromedp.Navigate(e.srv.URL+"/plans"), chromedp.WaitVisible(chromedp.CSS(`.plan`)))
	screenshot(t, ctx, "devportal-controls-plans")

	do("phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(e.srv.URL+"/approvals"),
		chromedp.WaitVisible(chromedp.CSS(`#pending-subscriptions`)))
	screenshot(t, ctx, "devportal-controls-approvals-mobile")
}
