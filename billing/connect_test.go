package billing_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/billing"
	"github.com/tollgate/tollgate/billing/stripetest"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
)

// apiServer serves billing.API with a test authenticator: the bearer
// token is the tenant id.
func apiServer(e *env, b *billing.Service) *httptest.Server {
	api := &billing.API{Billing: b, Authenticate: func(r *http.Request) (audit.Actor, error) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			return audit.Actor{}, fault.ErrUnauthenticated
		}
		return audit.Actor{TenantID: tok, Name: "admin_token:test"}, nil
	}}
	srv := httptest.NewServer(api.Handler())
	e.t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, srv *httptest.Server, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func TestConnectAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := apiServer(e, e.bill)
	a := e.tenant("conn-a", false)
	b := e.tenant("conn-b", false)

	st, out := call(t, srv, http.MethodGet, "/v1/billing/stripe", a.ID, "")
	if st != 200 || out["enabled"] != true || out["connected"] != false || out["account_id"] != nil ||
		out["grace_period_seconds"] != float64(259200) {
		t.Fatalf("GET before connecting: %d %v", st, out)
	}
	tests := []struct {
		name   string
		token  string
		body   string
		status int
		typ    string
	}{
		{"no token", "", `{"account_id":"acct_conna"}`, 401, "unauthenticated"},
		{"bad id", a.ID, `{"account_id":"sk_live_oops"}`, 422, "validation"},
		{"grace too long", a.ID, `{"account_id":"acct_conna","grace_period_seconds":2592001}`, 422, "validation"},
		{"unknown field", a.ID, `{"account_id":"acct_conna","secret":"x"}`, 400, "bad-request"},
		{"unknown to Stripe", a.ID, `{"account_id":"acct_missing"}`, 422, "validation"},
		{"connect", a.ID, `{"account_id":"acct_conna","grace_period_seconds":600}`, 200, ""},
		{"again, same", a.ID, `{"account_id":"acct_conna"}`, 200, ""},
		{"another tenant's account", b.ID, `{"account_id":"acct_conna"}`, 409, "conflict"},
	}
	e.rec.Intercept = func(q stripetest.Request) (*http.Response, error) {
		if q.Path == "/v1/accounts/acct_missing" {
			return stripetest.ErrorResponse(404, "invalid_request_error", "resource_missing", "No such account"), nil
		}
		return nil, nil
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, out := call(t, srv, http.MethodPut, "/v1/billing/stripe", tc.token, tc.body)
			if st != tc.status {
				t.Fatalf("status %d, want %d: %v", st, tc.status, out)
			}
			if tc.typ != "" && out["type"] != "https://tollgate.dev/problems/"+tc.typ {
				t.Errorf("type %v, want %s", out["type"], tc.typ)
			}
		})
	}
	st, out = call(t, srv, http.MethodGet, "/v1/billing/stripe", a.ID, "")
	if st != 200 || out["connected"] != true || out["account_id"] != "acct_conna" || out["grace_period_seconds"] != float64(600) ||
		out["livemode"] != false || out["platform_fee_percent"] != float64(5) {
		t.Fatalf("GET after connecting: %v", out)
	}
	var n int
	_ = e.db.QueryRow(e.ctx, `SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'billing.connect'`, a.ID).Scan(&n)
	if n != 2 {
		t.Errorf("audit entries: %d, want 2", n)
	}

	// Onboarding: a new Express account for b, connected, and a link.
	st, out = call(t, srv, http.MethodPost, "/v1/billing/stripe/onboarding", b.ID,
		`{"return_url":"https://portal.test/done","refresh_url":"https://portal.test/again","country":"DE"}`)
	if st != 200 || !strings.HasPrefix(out["url"].(string), "https://") || !strings.HasPrefix(out["account_id"].(string), "acct_") {
		t.Fatalf("onboarding: %d %v", st, out)
	}
	acct := e.rec.Find(http.MethodPost, "/v1/accounts")
	if len(acct) != 1 || acct[0].Form.Get("type") != "express" || acct[0].Form.Get("country") != "DE" || acct[0].Account != "" {
		t.Errorf("account creation: %+v", acct)
	}
	if c, _ := e.bill.Connection(e.ctx, b.ID); !c.Connected || *c.AccountID != out["account_id"] {
		t.Errorf("onboarding did not connect: %+v", c)
	}
	if st, _ := call(t, srv, http.MethodPost, "/v1/billing/stripe/onboarding", b.ID, `{"return_url":"ftp://x"}`); st != 422 {
		t.Errorf("bad onboarding urls: %d", st)
	}
	checkRequests(t, e.rec.Requests())
}

// TestAccountChange: a tenant with billed subscriptions cannot move to
// another account; without, it can, and its plans sync again there.
func TestAccountChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn, _ := paidSub(e, "mover", "sub_mover1")
	_, err := e.bill.Connect(e.ctx, tn.who, billing.ConnectInput{AccountID: "acct_moved"})
	var ce *fault.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("moving with a billed subscription: %v", err)
	}
	fresh := e.tenant("fresh", true)
	plan := e.plan(fresh, "P", &catalog.Price{AmountCents: 100, Currency: "usd"})
	e.runJobs()
	e.rec.Reset()
	if _, err := e.bill.Connect(e.ctx, fresh.who, billing.ConnectInput{AccountID: "acct_fresh2"}); err != nil {
		t.Fatal(err)
	}
	e.runJobs()
	got := e.rec.Find(http.MethodPost, "/v1/products")
	if len(got) != 1 || got[0].Account != "acct_fresh2" {
		t.Fatalf("plans not synced on the new account: %+v", got)
	}
	if pp, err := e.bill.PlanPriceVersion(e.ctx, fresh.ID, plan.ID, 1); err != nil || pp.FlatPriceID == "" {
		t.Fatalf("version on the new account: %+v %v", pp, err)
	}
}

// TestCheckoutUnavailable: billing off, a tenant not connected and prices
// not synced yet each give an UnavailableError with a reason the portal
// shows next to checkout_url: null.
func TestCheckoutUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn := e.tenant("unavail", false)
	plan, err := e.cat.CreatePlan(e.ctx, tn.who, catalog.PlanInput{Name: "Paid", Public: true,
		Price: &catalog.Price{AmountCents: 100, Currency: "usd"}})
	if err != nil {
		t.Fatal(err)
	}
	dev := e.developer(tn, "una")
	sub := e.subscribe(tn, dev, plan.ID)

	off, err := billing.New(billing.Config{}, e.db, e.cat, nil, nil)
	if err != nil || off.Enabled() {
		t.Fatal("billing.New without a key is not off", err)
	}
	if _, err := off.Checkout(e.ctx, tn.ID, sub.ID, "https://x.test/ok", "https://x.test/no"); !isUnavailable(err, billing.ReasonDisabled) {
		t.Errorf("billing off: %v", err)
	}
	if _, err := off.Connect(e.ctx, tn.who, billing.ConnectInput{AccountID: "acct_x"}); !errors.Is(err, fault.ErrConflict) {
		t.Errorf("connect with billing off: %v", err)
	}
	if _, err := e.bill.Checkout(e.ctx, tn.ID, sub.ID, "https://x.test/ok", "https://x.test/no"); !isUnavailable(err, billing.ReasonNotConnected) {
		t.Errorf("not connected: %v", err)
	}
	grace := 60
	if _, err := e.bill.Connect(e.ctx, tn.who, billing.ConnectInput{AccountID: "acct_unavail", GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	// Connecting queued the sync; until it ran, the prices are not ready.
	_, err = e.bill.Checkout(e.ctx, tn.ID, sub.ID, "https://x.test/ok", "https://x.test/no")
	var ue *billing.UnavailableError
	if !errors.As(err, &ue) || ue.Reason != billing.ReasonPricesNotReady || ue.Detail == "" {
		t.Fatalf("prices not ready: %v", err)
	}
	e.runJobs()
	if _, err := e.bill.Checkout(e.ctx, tn.ID, sub.ID, "https://x.test/ok", "https://x.test/no"); err != nil {
		t.Fatalf("after sync: %v", err)
	}
	if _, err := e.bill.CustomerPortal(e.ctx, tn.ID, sub.ID, "not a url"); !errors.As(err, new(*fault.ValidationError)) {
		t.Errorf("portal with a bad return url: %v", err)
	}
	// A free plan's subscription does not go through checkout.
	free, _ := e.cat.CreatePlan(e.ctx, tn.who, catalog.PlanInput{Name: "Free", Public: true})
	fs := e.subscribe(tn, dev, free.ID)
	if _, err := e.bill.Checkout(e.ctx, tn.ID, fs.ID, "https://x.test/ok", "https://x.test/no"); !errors.Is(err, fault.ErrConflict) {
		t.Errorf("free plan checkout: %v", err)
	}
	// Another developer's view of a missing subscription: not found.
	if _, err := e.bill.Checkout(e.ctx, tn.ID, "00000000-0000-0000-0000-000000000000", "https://x.test/ok", "https://x.test/no"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("missing subscription: %v", err)
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		wantErr bool
		enabled bool
		fee     float64
	}{
		{"off", map[string]string{}, false, false, 0},
		{"on", map[string]string{"TOLLGATE_STRIPE_SECRET_KEY": "sk_test_1", "TOLLGATE_STRIPE_PLATFORM_FEE_PERCENT": "2.5"}, false, true, 2.5},
		{"restricted key", map[string]string{"TOLLGATE_STRIPE_SECRET_KEY": "rk_live_1"}, false, true, 0},
		{"publishable key", map[string]string{"TOLLGATE_STRIPE_SECRET_KEY": "pk_test_1"}, true, false, 0},
		{"fee too precise", map[string]string{"TOLLGATE_STRIPE_SECRET_KEY": "sk_test_1", "TOLLGATE_STRIPE_PLATFORM_FEE_PERCENT": "2.555"}, true, false, 0},
		{"fee too big", map[string]string{"TOLLGATE_STRIPE_SECRET_KEY": "sk_test_1", "TOLLGATE_STRIPE_PLATFORM_FEE_PERCENT": "101"}, true, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := billing.ConfigFromEnv(func(k string) string { return tc.env[k] })
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v", err)
			}
			if err == nil && (c.Enabled() != tc.enabled || c.PlatformFeePercent != tc.fee) {
				t.Errorf("config %+v", c)
			}
			if err != nil && strings.Contains(err.Error(), "sk_test_1") {
				t.Errorf("error shows the key: %v", err)
			}
		})
	}
}
