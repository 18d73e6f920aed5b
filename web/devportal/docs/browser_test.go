package docs_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tollgate/tollgate/web/devportal/docs"
	"github.com/tollgate/tollgate/web/devportal/tryit"
	"github.com/tollgate/tollgate/web/static"
)

// csp is the portal's policy (web/portal): scripts and styles from the
// portal's own origin only.
const csp = "default-src 'self'; img-src 'self' https: data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self' https: http:"

// TestReferenceInBrowser shows the petstore reference in Chromium under the
// portal's CSP, framed like the developer portal's layout would, with the
// real relay in front of an httptest gateway. It checks the CSS-only tabs,
// then sends a request from a console and reads the result, and saves
// desktop and mobile screenshots. It skips without Chromium, except in CI.
func TestReferenceInBrowser(t *testing.T) {
	t.Parallel()
	chromium := "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		if p, lerr := exec.LookPath("chromium"); lerr == nil {
			chromium = p
		} else if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is required in CI: %v", err)
		} else {
			t.Skipf("chromium not installed: %v", err)
		}
	}

	// The tenant's gateway: echoes what it got.
	var mu sync.Mutex
	var got []*http.Request
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "req-7")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"id": 7, "received": json.RawMessage(body), "path": r.URL.Path})
	}))
	t.Cleanup(gw.Close)

	doc, err := os.ReadFile(filepath.Join("testdata", "petstore.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cache := docs.NewCache(4)
	relay := &tryit.Relay{
		Gateway: func(_ context.Context, apiID string) (*url.URL, bool) {
			if apiID != "pets" {
				return nil, false
			}
			return &url.URL{Scheme: "http", Host: "acme.localhost:8000", Path: "/pets"}, true
		},
		DialAddr: gw.Listener.Addr().String(),
	}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", static.Handler()))
	mux.HandleFunc("GET /accent.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		_, _ = io.WriteString(w, ":root { --accent: #0f766e; --accent-text: #fff; --accent-ink: #0f766e; }\nbody { margin: 0; font: 15px/1.5 system-ui, sans-serif; background: #f6f7fb; }\nmain { max-width: 1240px; margin: 0 auto; padding: 1.5rem; }\n")
	})
	mux.Handle("POST /apis/{id}/try", relay)
	mux.HandleFunc("GET /apis/pets", func(w http.ResponseWriter, r *http.Request) {
		ref, err := cache.Reference(doc, docs.Options{BaseURL: "http://acme.localhost:8000/pets", Key: "tg_live_demo"})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">`+
			`<title>Petstore · Acme developers</title><link rel="stylesheet" href="/static/devportal.css"><link rel="stylesheet" href="/static/docs.css"><link rel="stylesheet" href="/accent.css">`+
			`<script src="/static/tryit.js" defer></script></head><body><main>`)
		tc := docs.TryItConfig{Enabled: true, RelayURL: "/apis/pets/try", CSRFToken: "csrf-1", Key: "tg_live_demo", KeyHint: "Your apps' keys are under Apps."}
		if err := docs.ReferenceView(ref, tc).Render(r.Context(), w); err != nil {
			t.Error(err)
		}
		_, _ = io.WriteString(w, `</main></body></html>`)
	})
	portal := httptest.NewServer(mux)
	t.Cleanup(portal.Close)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1360, 900),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-dev-shm-usage", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancel)
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(js string) bool {
		t.Helper()
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return ok
	}
	// shoot saves what the window shows (a full page of the reference is
	// many screens long).
	shoot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join("testdata", "screenshots")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	do("open the reference", chromedp.Navigate(portal.URL+"/apis/pets"), chromedp.WaitVisible(chromedp.CSS(`#op-createpet`)))
	// tryit.js ran under the CSP: copy buttons shown, consoles enabled.
	if !eval(`document.querySelectorAll('button.ref-copy:not([hidden])').length > 10 && !document.querySelector('.ref-try-fields').disabled`) {
		t.Fatal("tryit.js did not run: copy buttons hidden or consoles disabled")
	}
	// The stylesheet applied: the contents are sticky beside the content.
	if !eval(`getComputedStyle(document.querySelector('.ref-toc')).position === 'sticky'`) {
		t.Error("docs.css did not apply")
	}
	// CSS-only tabs: curl first; a click on Python shows the Python sample.
	if !eval(`getComputedStyle(document.getElementById('op-createpet--curl').closest('.ref-tab-panel')).display === 'block' &&
		getComputedStyle(document.getElementById('op-createpet--python').closest('.ref-tab-panel')).display === 'none'`) {
		t.Error("the curl tab should be the one shown")
	}
	do("python tab", chromedp.Click(chromedp.CSS(`label[for="op-createpet--python-tab"]`)))
	if !eval(`getComputedStyle(document.getElementById('op-createpet--python').closest('.ref-tab-panel')).display === 'block'`) {
		t.Error("a click on Python should show the Python sample")
	}
	do("samples", chromedp.Evaluate[chromedp.Void](`document.getElementById('op-createpet--curl').closest('.ref-snippets').previousElementSibling.scrollIntoView()`))
	shoot("reference-samples")
	do("top", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	shoot("reference-top")
	do("createPet", chromedp.Evaluate[chromedp.Void](`document.getElementById('op-createpet').scrollIntoView()`))
	shoot("reference-operation")

	// Send a request from the createPet console.
	do("open the console", chromedp.Click(chromedp.CSS(`#op-createpet--try > summary`)),
		chromedp.WaitVisible(chromedp.CSS(`#op-createpet--body`)))
	do("send", chromedp.ScrollIntoView(chromedp.CSS(`#op-createpet--try button[type=submit]`)),
		chromedp.Click(chromedp.CSS(`#op-createpet--try button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#op-createpet--try .ref-try-result .ref-status`)))
	res, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#op-createpet--try .ref-try-result`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"201", " ms", `"received"`, `"name": "Rex"`} {
		if !strings.Contains(res, want) {
			t.Errorf("the result lacks %q:\n%s", want, res)
		}
	}
	mu.Lock()
	if len(got) != 1 {
		t.Fatalf("the gateway saw %d requests", len(got))
	}
	r := got[0]
	mu.Unlock()
	if r.Method != "POST" || r.URL.Path != "/pets/pets" || r.Host != "acme.localhost:8000" ||
		r.Header.Get("X-API-Key") != "tg_live_demo" || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Cookie") != "" {
		t.Errorf("the gateway got %s %s host %s headers %v", r.Method, r.URL.Path, r.Host, r.Header)
	}
	do("result visible", chromedp.Evaluate[chromedp.Void](`document.getElementById('op-createpet--try').scrollIntoView()`))
	shoot("reference-try-result")

	// A refusal shows the relay's problem: a path parameter that climbs out.
	do("getPet console", chromedp.Click(chromedp.CSS(`#op-getpet--try > summary`)),
		chromedp.SetValue(chromedp.CSS(`#op-getpet--p0`), ".."),
		chromedp.Click(chromedp.CSS(`#op-getpet--try button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#op-getpet--try .ref-try-error`)))
	if msg, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#op-getpet--try .ref-try-error`))); !strings.Contains(msg, "Invalid path") {
		t.Errorf("refusal message = %q", msg)
	}

	// Mobile: one column, the contents above the reference.
	do("mobile", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Navigate(portal.URL+"/apis/pets#op-listpets"), chromedp.WaitVisible(chromedp.CSS(`#op-listpets`)))
	if !eval(`getComputedStyle(document.querySelector('.ref-toc')).position === 'static' &&
		document.querySelector('.ref-toc').getBoundingClientRect().bottom <= document.querySelector('.ref-main').getBoundingClientRect().top + 1 &&
		document.documentElement.scrollWidth <= window.innerWidth`) {
		t.Error("on a phone the contents should sit above the reference, with no sideways scroll")
	}
	do("mobile top", chromedp.Navigate(portal.URL+"/apis/pets"), chromedp.WaitVisible(chromedp.CSS(`#op-listpets`)))
	shoot("reference-mobile-top")
	do("mobile operation", chromedp.Evaluate[chromedp.Void](`document.getElementById('op-listpets').scrollIntoView()`))
	shoot("reference-mobile-operation")
}
