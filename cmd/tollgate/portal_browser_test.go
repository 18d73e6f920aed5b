package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/worker"
	"github.com/tollgate/tollgate/services/mail"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/storetest"
)

// screenshotDir keeps the portal's screenshots (gitignored; CI keeps them as
// artifacts).
const screenshotDir = "../../web/testdata/screenshots"

// portalPlatform is the control plane with the tenant portal, one proxy
// worker and a backend, all on loopback.
type portalPlatform struct {
	control string
	worker  string
	sink    *mail.Sink
}

func startPortalPlatform(t *testing.T, backend string) *portalPlatform {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	db, err := store.Open(ctx, storetest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	prefix := "portal:" + randHex(6) + ":"
	keys := proxycfg.Keys{Prefix: prefix}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	p := &portalPlatform{sink: &mail.Sink{}}
	controlLn := listen(t)
	p.control = "http://" + controlLn.Addr().String()
	cfg := config{Secret: []byte("portal-browser-" + randHex(8)), AllowPrivate: true, ProxyDomain: "localhost", PublicURL: p.control}
	cfg.DigestKey = testDigestKey(t, db, cfg.Secret)
	web, err := newPortal(ctx, cfg, db, rdb, keys, log, controlLn.Addr().String(), p.sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	deps := controlDeps{DB: db, Redis: rdb, Keys: keys, Secret: cfg.Secret, DigestKey: cfg.DigestKey, AllowPrivate: true, Logger: log,
		PollInterval: 200 * time.Millisecond, Portal: web}
	var wg sync.WaitGroup
	wg.Go(func() { _ = serveControl(ctx, deps, controlLn) })
	w, err := worker.New(worker.Options{Redis: rdb, Keys: keys, Secret: cfg.Secret, Domain: "localhost",
		AllowPrivateUpstreams: true, Logger: log, PollInterval: 200 * time.Millisecond, MeterInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	traffic, admin := listen(t), listen(t)
	p.worker = traffic.Addr().String()
	wg.Go(func() { _ = w.Serve(ctx, traffic, admin) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = clearPrefix(context.Background(), rdb, prefix)
		rdb.Close()
		db.Close()
	})
	return p
}

// newBrowser starts Debian's Chromium headless with a fresh profile. It
// skips the test when Chromium is missing, except in CI.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := "/usr/bin/chromium"
	if _, err := os.Stat(path); err != nil {
		if p, lerr := exec.LookPath("chromium"); lerr == nil {
			path = p
		} else if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is required in CI (install it with apt-get install chromium): %v", err)
		} else {
			t.Skipf("chromium not installed (%v); install Debian's chromium to run the browser tests", err)
		}
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1360, 900),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first action starts the browser; it must not run under a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	tctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancelTimeout)
	return tctx
}

func shoot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshotDir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func browse(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
		t.Fatalf("%s: %v (at %s)\n%s", what, err, loc, body)
	}
}

// text reads the text of the first element matching sel.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// TestPortalInBrowser signs up, creates an upstream, an API and a plan,
// issues a key, calls the proxy with it and sees the call on the dashboard,
// all through the pages in a real browser.
func TestPortalInBrowser(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
	}))
	t.Cleanup(backend.Close)
	p := startPortalPlatform(t, backend.URL)
	slug := "shop" + randHex(3)

	browse(t, ctx, "login page", chromedp.Navigate(p.control+"/"), chromedp.WaitVisible(chromedp.CSS(`#f-email`)))
	shoot(t, ctx, "01-login")
	browse(t, ctx, "sign up",
		chromedp.Navigate(p.control+"/signup"), chromedp.WaitVisible(chromedp.CSS(`#f-company`)),
		chromedp.SendKeys(chromedp.CSS(`#f-company`), "Shop Inc."), chromedp.SendKeys(chromedp.CSS(`#f-slug`), slug),
		chromedp.SendKeys(chromedp.CSS(`#f-name`), "Grace Hopper"), chromedp.SendKeys(chromedp.CSS(`#f-email`), "grace@"+slug+".example"),
		chromedp.SendKeys(chromedp.CSS(`#f-password`), "short"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`#e-password`)),
	)
	shoot(t, ctx, "02-signup-error")
	browse(t, ctx, "sign up again",
		chromedp.SendKeys(chromedp.CSS(`#f-password`), "a long enough password"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`.getting-started`)),
	)
	shoot(t, ctx, "03-dashboard-new-tenant")

	browse(t, ctx, "upstreams empty", chromedp.Navigate(p.control+"/upstreams"), chromedp.WaitVisible(chromedp.CSS(`.empty`)))
	shoot(t, ctx, "04-upstreams-empty")
	browse(t, ctx, "create upstream",
		chromedp.Navigate(p.control+"/upstreams/new"), chromedp.WaitVisible(chromedp.CSS(`#f-name`)),
		chromedp.SendKeys(chromedp.CSS(`#f-name`), "shop-backend"), chromedp.SendKeys(chromedp.CSS(`#f-targets`), backend.URL),
		chromedp.Click(chromedp.CSS(`#f-hc_enabled`)), chromedp.SendKeys(chromedp.CSS(`#f-hc_path`), "/healthz"), chromedp.SendKeys(chromedp.CSS(`#f-hc_interval`), "2000"),
		chromedp.Click(chromedp.CSS(`main button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`.targets`)),
	)
	shoot(t, ctx, "05-upstreams")

	browse(t, ctx, "create api",
		chromedp.Navigate(p.control+"/apis/new"), chromedp.WaitVisible(chromedp.CSS(`#f-name`)),
		chromedp.SendKeys(chromedp.CSS(`#f-name`), "Catalog API"), chromedp.SendKeys(chromedp.CSS(`#f-slug`), "catalog"),
		chromedp.SendKeys(chromedp.CSS(`#f-base_path`), "/catalog"),
		chromedp.Click(chromedp.CSS(`main button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`.callout`)),
	)
	browse(t, ctx, "import openapi",
		chromedp.SetValue(chromedp.CSS(`#f-document`), "openapi: 3.0.3\ninfo: {title: Catalog, version: '1.0'}\npaths:\n  /items:\n    get: {operationId: listItems, summary: List items, responses: {'200': {description: ok}}}\n  /items/{id}:\n    parameters: [{name: id, in: path, required: true, schema: {type: string}}]\n    get: {operationId: getItem, responses: {'200': {description: ok}}}\n"),
		chromedp.Click(chromedp.CSS(`form[action$="/openapi"] button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`.method-GET`)),
	)
	shoot(t, ctx, "06-api")
	browse(t, ctx, "apis list", chromedp.Navigate(p.control+"/apis"), chromedp.WaitVisible(chromedp.CSS(`table`)))
	shoot(t, ctx, "07-apis")

	browse(t, ctx, "create plan",
		chromedp.Navigate(p.control+"/plans/new"), chromedp.WaitVisible(chromedp.CSS(`#f-name`)),
		chromedp.SendKeys(chromedp.CSS(`#f-name`), "Starter"), chromedp.SetValue(chromedp.CSS(`#f-quota_requests`), "100000"),
		chromedp.SetValue(chromedp.CSS(`#f-price`), "19.00"),
		chromedp.Click(chromedp.CSS(`main button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`.plan`)),
	)
	shoot(t, ctx, "08-plans")

	browse(t, ctx, "issue key",
		chromedp.Navigate(p.control+"/consumers"), chromedp.WaitVisible(chromedp.CSS(`#f-name`)),
		chromedp.SendKeys(chromedp.CSS(`#f-name`), "Mobile app"), chromedp.SendKeys(chromedp.CSS(`#f-email`), "mobile@partner.example"),
		chromedp.Click(chromedp.CSS(`main button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`#f-plan_id`)),
		chromedp.Click(chromedp.CSS(`form[action$="/keys"] button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`#new-key`)),
	)
	key := text(t, ctx, `#new-key`)
	if !strings.HasPrefix(key, "tg_") {
		t.Fatalf("shown key %q", key)
	}
	shoot(t, ctx, "09-key-issued")

	// Call the proxy with the key until the new config has reached the worker.
	client := &http.Client{Timeout: 5 * time.Second}
	host := slug + ".localhost"
	deadline := time.Now().Add(20 * time.Second)
	calls := 0
	for {
		req, _ := http.NewRequest("GET", "http://"+p.worker+"/catalog/items", nil)
		req.Host = host
		req.Header.Set("X-API-Key", key)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			calls++
			if resp.StatusCode == http.StatusOK {
				if !strings.Contains(string(body), `"/items"`) {
					t.Fatalf("backend saw %s, want /items", body)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proxy did not serve the new API with the new key within 20s (err %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := 0; i < 24; i++ {
		req, _ := http.NewRequest("GET", "http://"+p.worker+"/catalog/items/"+strconv.Itoa(i), nil)
		req.Host = host
		if i%6 != 5 {
			req.Header.Set("X-API-Key", key)
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}

	// The calls show on the dashboard once metered and aggregated.
	var requests string
	deadline = time.Now().Add(30 * time.Second)
	for {
		browse(t, ctx, "dashboard", chromedp.Navigate(p.control+"/dashboard?range=1h"), chromedp.WaitVisible(chromedp.CSS(`.stat-value`)))
		requests = text(t, ctx, `.stat:first-child .stat-value`)
		if n, _ := strconv.Atoi(strings.TrimSpace(requests)); n >= 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dashboard shows %q requests 30s after the calls", requests)
		}
		time.Sleep(500 * time.Millisecond)
	}
	browse(t, ctx, "top consumers", chromedp.WaitVisible(chromedp.CSS(`.bars`)), chromedp.WaitVisible(chromedp.CSS(`svg.chart rect.s1`)))
	top := text(t, ctx, `.bars`)
	if !strings.Contains(top, "Mobile app") {
		t.Errorf("top consumers = %q, want Mobile app", top)
	}
	shoot(t, ctx, "10-dashboard")

	for _, pg := range []struct{ path, name, wait string }{
		{"/team", "11-team", `#f-email`},
		{"/tokens", "12-tokens", `table`},
		{"/audit", "13-audit", `table.audit`},
		{"/settings", "14-settings", `#f-domain`},
	} {
		browse(t, ctx, pg.name, chromedp.Navigate(p.control+pg.path), chromedp.WaitVisible(chromedp.CSS(pg.wait)))
		shoot(t, ctx, pg.name)
	}
	// Invite someone; the mail sink receives the invitation.
	browse(t, ctx, "invite", chromedp.Navigate(p.control+"/team"), chromedp.WaitVisible(chromedp.CSS(`#f-email`)),
		chromedp.SendKeys(chromedp.CSS(`#f-email`), "ops@"+slug+".example"), chromedp.Click(chromedp.CSS(`form[action="/team/invites"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	if _, ok := p.sink.Last("ops@" + slug + ".example"); !ok {
		t.Errorf("no invitation mail")
	}
	// A narrow screen gets the stacked layout.
	browse(t, ctx, "mobile", chromedp.EmulateViewport(390, 844), chromedp.Navigate(p.control+"/dashboard?range=1h"), chromedp.WaitVisible(chromedp.CSS(`.stat-value`)))
	shoot(t, ctx, "15-dashboard-mobile")
}
