//go:build devportalshots

package devportal_test

// Temporary: screenshots of the pages in Chromium to look at them (not the
// browser test, which the lead writes).

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

func TestPageShots(t *testing.T) {
	e := newEnv(t, envOpts{})
	f := e.tenants["acme"]
	dir := "/tmp/devportal-shots"
	_ = os.MkdirAll(dir, 0o755)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath("/usr/bin/chromium"), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1360, 900),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("host-resolver-rules", "MAP *.developers.test 127.0.0.1"),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelT()
	base := "http://" + host("acme") + ":" + e.port()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	do("home", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`#hero`)))
	shot("01-home")
	do("catalog", chromedp.Navigate(base+"/apis"), chromedp.WaitVisible(chromedp.CSS(`#api-list`)))
	shot("02-catalog")
	do("signup", chromedp.Navigate(base+"/signup"), chromedp.WaitVisible(chromedp.CSS(`#signup-form`)),
		chromedp.SendKeys(chromedp.CSS(`#f-name`), "Ada Dev"), chromedp.SendKeys(chromedp.CSS(`#f-email`), "ada@example.com"),
		chromedp.SendKeys(chromedp.CSS(`#f-password`), "short"), chromedp.Click(chromedp.CSS(`#signup-button`)),
		chromedp.WaitVisible(chromedp.CSS(`.field-error`)))
	shot("03-signup-error")
	do("signup ok", chromedp.SetValue(chromedp.CSS(`#f-password`), "correct horse battery"), chromedp.Click(chromedp.CSS(`#signup-button`)),
		chromedp.WaitVisible(chromedp.CSS(`#message`)))
	shot("04-signup-sent")
	tok := e.mailedToken("ada@example.com", "Confirm")
	do("verify", chromedp.Navigate(base+"/verify?token="+tok), chromedp.WaitVisible(chromedp.CSS(`#verify-button`)))
	shot("05-verify")
	do("verify post", chromedp.Click(chromedp.CSS(`#verify-button`)), chromedp.WaitVisible(chromedp.CSS(`#login-form`)))
	shot("06-login-flash")
	do("login", chromedp.SendKeys(chromedp.CSS(`#f-email`), "ada@example.com"),
		chromedp.SendKeys(chromedp.CSS(`#f-password`), "correct horse battery"), chromedp.Click(chromedp.CSS(`#login-button`)),
		chromedp.WaitVisible(chromedp.CSS(`#app-form`)))
	shot("07-apps-empty")
	do("create app", chromedp.SendKeys(chromedp.CSS(`#f-name`), "Billing service"), chromedp.Click(chromedp.CSS(`#app-create`)),
		chromedp.WaitVisible(chromedp.CSS(`#subscribe-form`)))
	shot("08-app")
	do("subscribe", chromedp.Click(chromedp.CSS(`#plan-`+f.FreePlan.ID)), chromedp.Click(chromedp.CSS(`#subscribe-button`)),
		chromedp.WaitVisible(chromedp.CSS(`#new-key`)), chromedp.WaitVisible(chromedp.CSS(`#copy-key`)))
	shot("09-key")
	key, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#new-key`)))
	if err != nil {
		t.Fatal(err)
	}
	do("try with key", chromedp.Click(chromedp.CSS(`.try-with-key-form button`)), chromedp.WaitVisible(chromedp.CSS(`.ref`)))
	shot("10-api-filled")
	do("try it", chromedp.Click(chromedp.CSS(`#op-listpets--try > summary`)),
		chromedp.WaitVisible(chromedp.CSS(`#op-listpets--try button[type=submit]`)),
		chromedp.Click(chromedp.CSS(`#op-listpets--try button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#op-listpets--try .ref-try-meta`)))
	res, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#op-listpets--try .ref-try-result`)))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("try-it result: %.300s (key %s)", res, key)
	shot("11-api-tried")
	appID := pageKeys(t, e, "acme", "")
	_ = appID
	do("apps", chromedp.Navigate(base+"/apps"), chromedp.WaitVisible(chromedp.CSS(`#app-list`)))
	shot("12-apps")
	do("app", chromedp.Click(chromedp.CSS(`.app-link`)), chromedp.WaitVisible(chromedp.CSS(`#subscribe-form`)))
	do("rotate open", chromedp.Click(chromedp.CSS(`.inline-details > summary`)), chromedp.WaitVisible(chromedp.CSS(`.rotate-form select`)))
	shot("13-app-rotate")
	do("rotate", chromedp.Click(chromedp.CSS(`.rotate-form button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`#old-key-note`)))
	shot("14-rotated")
	do("app again", chromedp.Click(chromedp.CSS(`#key-done`)), chromedp.WaitVisible(chromedp.CSS(`#subscribe-form`)))
	shot("15-app-after-rotate")
	dev, err := e.devs.Login(context.Background(), f.Tenant, "ada@example.com", "correct horse battery", "1.2.3.4")
	if err != nil {
		t.Fatal(err)
	}
	keys, _, _ := e.cat.ListKeys(context.Background(), f.Tenant.ID, dev.ConsumerID, storePage())
	for _, k := range keys {
		e.pageInsertUsage("acme", k.ID, dev.ConsumerID, 2, 800)
		e.pageInsertUsage("acme", k.ID, dev.ConsumerID, 4, 40)
	}
	do("usage", chromedp.Navigate(base+"/usage"), chromedp.WaitVisible(chromedp.CSS(`#usage-charts`)))
	shot("16-usage")
	do("404", chromedp.Navigate(base+"/nothing"), chromedp.WaitVisible(chromedp.CSS(`#error`)))
	shot("17-404")
	do("mobile", chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/apps"), chromedp.WaitVisible(chromedp.CSS(`#app-list`)))
	shot("18-mobile-apps")
	do("mobile menu", chromedp.Click(chromedp.CSS(`.dp-nav-button`)), chromedp.WaitVisible(chromedp.CSS(`#nav-usage`)))
	shot("19-mobile-menu")
	do("mobile api", chromedp.Navigate(base+"/apis/pets"), chromedp.WaitVisible(chromedp.CSS(`.ref`)))
	shot("20-mobile-api")
	do("mobile usage", chromedp.Navigate(base+"/usage"), chromedp.WaitVisible(chromedp.CSS(`#usage-charts`)))
	shot("21-mobile-usage")
}
