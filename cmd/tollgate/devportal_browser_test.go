package main

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// echoDoc documents the echo API of setupTenant for the browser journey.
const echoDoc = `{"openapi":"3.0.3","info":{"title":"Echo","version":"2.1.0","description":"Answers with the method and path it got."},
"paths":{
 "/hello":{"get":{"operationId":"hello","tags":["greetings"],"summary":"Say hello",
   "parameters":[{"name":"name","in":"query","schema":{"type":"string","example":"Ada"}}],
   "responses":{"200":{"description":"the echo","content":{"application/json":{"schema":{"type":"object","properties":{"backend":{"type":"string"},"path":{"type":"string"}}}}}}}}},
 "/items/{id}":{"get":{"operationId":"getItem","tags":["items"],"summary":"Read an item",
   "parameters":[{"name":"id","in":"path","required":true,"schema":{"type":"string","example":"42"}}],
   "responses":{"200":{"description":"the echo"}}}}}}`

var verifyLinkRE = regexp.MustCompile(`http://acme\.developers\.localhost:\d+/verify\?token=[A-Za-z0-9_]+`)

// TestDeveloperPortalInBrowser walks a developer's whole journey in a real
// browser against a running control plane and two workers: sign up, open
// the verification link from the SMTP server, subscribe an app to a free
// plan, copy the key, call an operation from try-it, rotate the key with an
// overlap, and see the calls in the usage chart. Screenshots go to
// web/testdata/screenshots/devportal-*.png.
func TestDeveloperPortalInBrowser(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	p := startPlatform(t)
	back := httptest.NewServer(demoBackend("a"))
	defer back.Close()
	acme := p.setupTenant("acme", []string{back.URL}, 100)
	free := p.portalTenant(acme, 1000)
	req, _ := http.NewRequest("PUT", p.control+"/v1/apis/"+acme.api+"/openapi", strings.NewReader(echoDoc))
	req.Header.Set("Authorization", "Bearer "+acme.token)
	if resp, err := p.client.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("import document: %v %v", resp, err)
	}
	p.api("PUT", "/v1/portal", acme.token, map[string]any{"display_name": "Acme Developers", "accent_color": "#0f766e"}, 200, nil)
	_, port, _ := strings.Cut(strings.TrimPrefix(p.control, "http://"), ":")
	portal := "http://acme.developers.localhost:" + port
	email := "ada@example.com"

	browse(t, ctx, "home", chromedp.Navigate(portal+"/"), chromedp.WaitVisible(chromedp.CSS(`#hero`)))
	shoot(t, ctx, "devportal-01-home")
	browse(t, ctx, "catalogue", chromedp.Navigate(portal+"/apis"), chromedp.WaitVisible(chromedp.CSS(`#api-echo`)))
	shoot(t, ctx, "devportal-02-catalogue")
	browse(t, ctx, "sign up",
		chromedp.Navigate(portal+"/signup"), chromedp.WaitVisible(chromedp.CSS(`#signup-form`)),
		chromedp.SendKeys(chromedp.CSS(`#f-name`), "Ada Lovelace"), chromedp.SendKeys(chromedp.CSS(`#f-email`), email),
		chromedp.SendKeys(chromedp.CSS(`#f-password`), "short"),
		chromedp.Click(chromedp.CSS(`#signup-button`)), chromedp.WaitVisible(chromedp.CSS(`#f-password-error`)))
	shoot(t, ctx, "devportal-03-signup-error")
	browse(t, ctx, "sign up again",
		chromedp.SendKeys(chromedp.CSS(`#f-password`), "correct horse battery"),
		chromedp.Click(chromedp.CSS(`#signup-button`)), chromedp.WaitVisible(chromedp.CSS(`#message`)))
	shoot(t, ctx, "devportal-04-check-inbox")

	// The verification link, from the real SMTP server.
	m := p.smtp.WaitFor(t, email, 10*time.Second)
	link := verifyLinkRE.FindString(m.Text)
	if link == "" || !strings.Contains(m.HTML, link) {
		t.Fatalf("no verification link in the mail (text %q)", m.Text)
	}
	browse(t, ctx, "verify", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`#verify-button`)))
	shoot(t, ctx, "devportal-05-verify")
	browse(t, ctx, "confirm", chromedp.Click(chromedp.CSS(`#verify-button`)), chromedp.WaitVisible(chromedp.CSS(`#login-form`)))
	browse(t, ctx, "sign in",
		chromedp.SendKeys(chromedp.CSS(`#f-email`), email), chromedp.SendKeys(chromedp.CSS(`#f-password`), "correct horse battery"),
		chromedp.Click(chromedp.CSS(`#login-button`)), chromedp.WaitVisible(chromedp.CSS(`#nav-apps`)))

	browse(t, ctx, "apps", chromedp.Navigate(portal+"/apps"), chromedp.WaitVisible(chromedp.CSS(`#apps-empty`)))
	shoot(t, ctx, "devportal-06-apps-empty")
	browse(t, ctx, "create app",
		chromedp.SendKeys(chromedp.CSS(`#f-name`), "Mobile app"), chromedp.Click(chromedp.CSS(`#app-create`)),
		chromedp.WaitVisible(chromedp.CSS(`#subscribe-form`)))
	browse(t, ctx, "subscribe",
		chromedp.Click(chromedp.CSS(`#plan-`+free)), chromedp.Click(chromedp.CSS(`#subscribe-button`)),
		chromedp.WaitVisible(chromedp.CSS(`#new-key`)))
	key := text(t, ctx, `#new-key`)
	if !strings.HasPrefix(key, "tg_") {
		t.Fatalf("shown key %q", key)
	}
	browse(t, ctx, "copy the key", chromedp.WaitVisible(chromedp.CSS(`#copy-key`)), chromedp.Click(chromedp.CSS(`#copy-key`)))
	shoot(t, ctx, "devportal-07-key")

	// The key reaches the workers; try-it calls an operation through the
	// relay, which calls the tenant's gateway.
	for w := range p.workers {
		p.eventually(10*time.Second, "the key works", func() bool { return p.call(w, "acme.localhost", "/echo/hello", key).status == 200 })
	}
	browse(t, ctx, "try it with this key",
		chromedp.Click(chromedp.CSS(`.try-with-key-form button`)), chromedp.WaitVisible(chromedp.CSS(`#reference`)),
		chromedp.Click(chromedp.CSS(`#op-hello--try > summary`)),
		chromedp.WaitEnabled(chromedp.CSS(`#op-hello--try button[type=submit]`)),
		chromedp.Click(chromedp.CSS(`#op-hello--try button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#op-hello--try .ref-try-result .ref-status`)))
	status := text(t, ctx, `#op-hello--try .ref-try-result .ref-status`)
	body := text(t, ctx, `#op-hello--try .ref-try-result > pre`)
	if status != "200" || !strings.Contains(body, `"/hello?name=Ada"`) {
		t.Fatalf("try-it answered %s: %s", status, body)
	}
	browse(t, ctx, "scroll", chromedp.ScrollIntoView(chromedp.CSS(`#op-hello--try`)))
	shoot(t, ctx, "devportal-08-try-it")

	// Rotate with a one-hour overlap: both keys work on every worker.
	browse(t, ctx, "apps again", chromedp.Navigate(portal+"/apps"), chromedp.WaitVisible(chromedp.CSS(`.app-link`)),
		chromedp.Click(chromedp.CSS(`.app-link`)), chromedp.WaitVisible(chromedp.CSS(`form.rotate-form`)))
	browse(t, ctx, "rotate",
		chromedp.Click(chromedp.CSS(`details:has(form.rotate-form) > summary`)),
		chromedp.SetValue(chromedp.CSS(`form.rotate-form select[name=overlap]`), "3600"),
		chromedp.Click(chromedp.CSS(`form.rotate-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#old-key-note`)))
	newKey := text(t, ctx, `#new-key`)
	if newKey == key || !strings.HasPrefix(newKey, "tg_") {
		t.Fatalf("rotated key %q", newKey)
	}
	shoot(t, ctx, "devportal-09-rotated")
	calls := 0
	for w := range p.workers {
		p.eventually(10*time.Second, "the new key works", func() bool { return p.call(w, "acme.localhost", "/echo/items/1", newKey).status == 200 })
		for i := range 5 {
			for _, k := range []string{key, newKey} {
				if a := p.call(w, "acme.localhost", "/echo/items/"+strconv.Itoa(i), k); a.status != 200 {
					t.Fatalf("worker %d during the overlap: %d %s", w, a.status, a.body)
				}
				calls++
			}
		}
	}
	browse(t, ctx, "app after rotation", chromedp.Navigate(portal+"/apps"), chromedp.Click(chromedp.CSS(`.app-link`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-status=expiring]`)))
	shoot(t, ctx, "devportal-10-app-keys")

	// The calls reach the usage chart once metered and aggregated.
	deadline := time.Now().Add(45 * time.Second)
	for {
		browse(t, ctx, "usage", chromedp.Navigate(portal+"/usage"), chromedp.WaitReady(chromedp.CSS(`main`)))
		bars, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#chart-day-requests rect').length`))
		shown, _ := chromedp.Run(ctx, chromedp.Evaluate[int](
			`parseInt((document.querySelector('#usage-apps tbody tr td:nth-child(2)') || {textContent: '0'}).textContent.replace(/[^0-9]/g, ''), 10) || 0`))
		if bars > 0 && shown >= calls {
			break
		}
		if time.Now().After(deadline) {
			main, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`main`)))
			t.Fatalf("the usage page does not show the calls 45s after them:\n%s", main)
		}
		time.Sleep(time.Second)
	}
	shoot(t, ctx, "devportal-11-usage")
	browse(t, ctx, "mobile", chromedp.EmulateViewport(390, 844), chromedp.Navigate(portal+"/usage"), chromedp.WaitVisible(chromedp.CSS(`#usage-charts`)))
	shoot(t, ctx, "devportal-12-usage-mobile")
}
