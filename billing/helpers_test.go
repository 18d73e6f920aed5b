package billing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/tollgate/tollgate/billing"
	"github.com/tollgate/tollgate/billing/stripe"
	"github.com/tollgate/tollgate/billing/stripetest"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/storetest"
	"github.com/tollgate/tollgate/services/tenancy"
)

var secret = []byte("billing-test-secret-0123456789abcdef")

const whsec = "whsec_test_tollgate"

// env is one test's platform: a database of its own, the catalog, billing
// with a recording stripe-mock client, and its webhook endpoint.
type env struct {
	t      testing.TB
	ctx    context.Context
	db     *pgxpool.Pool
	cat    *catalog.Service
	rec    *stripetest.Recorder
	client *stripe.Client
	bill   *billing.Service
	runner *billing.Runner
	hook   *httptest.Server
	now    atomic.Pointer[time.Time]
}

func newEnv(t testing.TB) *env {
	t.Helper()
	client, rec := stripetest.New(t)
	db := storetest.NewPool(t)
	cat := catalog.New(db, secret, true)
	cat.BillingURL = "http://{slug}.developers.test/billing/{subscription}"
	e := &env{t: t, ctx: context.Background(), db: db, cat: cat, rec: rec, client: client}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := billing.New(billing.Config{WebhookSecret: whsec, PlatformFeePercent: 5}, db, cat, client, log)
	if err != nil {
		t.Fatal(err)
	}
	b.Now = func() time.Time {
		if p := e.now.Load(); p != nil {
			return *p
		}
		return time.Now()
	}
	e.bill = b
	e.runner = &billing.Runner{Billing: b, SweepEvery: -1}
	e.hook = httptest.NewServer(b.Webhook())
	t.Cleanup(e.hook.Close)
	return e
}

type tenant struct {
	ID, Slug, Account string
	who               audit.Actor
}

// tenant makes a tenant, connected to the Stripe account acct_<slug> when
// connect is true.
func (e *env) tenant(slug string, connect bool) tenant {
	e.t.Helper()
	ten, _, err := tenancy.Create(e.ctx, e.db, secret, slug+" Inc", slug)
	if err != nil {
		e.t.Fatal(err)
	}
	tn := tenant{ID: ten.ID, Slug: slug, Account: "acct_" + strings.ReplaceAll(slug, "-", ""),
		who: audit.Actor{TenantID: ten.ID, Name: "test-admin"}}
	if connect {
		grace := 3600
		if _, err := e.bill.Connect(e.ctx, tn.who, billing.ConnectInput{AccountID: tn.Account, GracePeriodSeconds: &grace}); err != nil {
			e.t.Fatal(err)
		}
	}
	return tn
}

func (e *env) plan(tn tenant, name string, price *catalog.Price) catalog.Plan {
	e.t.Helper()
	p, err := e.cat.CreatePlan(e.ctx, tn.who, catalog.PlanInput{Name: name, Public: true, Price: price,
		Quota: catalog.Quota{Requests: 1000, Period: "month"}})
	if err != nil {
		e.t.Fatal(err)
	}
	// The catalog does not queue syncs itself yet (the lead wires
	// catalog.EnqueuePlanSync into CreatePlan); do what it will do.
	e.enqueueSync(tn, p.ID)
	return p
}

func (e *env) enqueueSync(tn tenant, planID string) {
	e.t.Helper()
	tx, err := e.db.Begin(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	defer tx.Rollback(e.ctx)
	if err := catalog.EnqueuePlanSync(e.ctx, tx, tn.ID, planID); err != nil {
		e.t.Fatal(err)
	}
	if err := tx.Commit(e.ctx); err != nil {
		e.t.Fatal(err)
	}
}

// runJobs runs every due job and fails the test if one is left failing.
func (e *env) runJobs() {
	e.t.Helper()
	if _, err := e.runner.RunDue(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	var failing []string
	rows, err := e.db.Query(e.ctx, `SELECT kind || ' ' || ref || ': ' || last_error FROM billing_jobs WHERE done_at IS NULL`)
	if err != nil {
		e.t.Fatal(err)
	}
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		failing = append(failing, s)
	}
	if len(failing) > 0 {
		e.t.Fatalf("billing jobs not done: %v", failing)
	}
}

type developer struct {
	ConsumerID, AppID string
}

func (e *env) developer(tn tenant, name string) developer {
	e.t.Helper()
	c, err := e.cat.CreateConsumer(e.ctx, tn.who, catalog.ConsumerInput{Name: name, Email: name + "@example.com"})
	if err != nil {
		e.t.Fatal(err)
	}
	a, err := e.cat.CreateApp(e.ctx, tn.who, c.ID, catalog.AppInput{Name: name + "'s app"})
	if err != nil {
		e.t.Fatal(err)
	}
	return developer{ConsumerID: c.ID, AppID: a.ID}
}

func (e *env) subscribe(tn tenant, d developer, planID string) catalog.Subscription {
	e.t.Helper()
	out, err := e.cat.Subscribe(e.ctx, tn.who, d.ConsumerID, catalog.SubscribeInput{AppID: d.AppID, PlanID: planID})
	if err != nil {
		e.t.Fatal(err)
	}
	return out.Subscription
}

func (e *env) sub(tn tenant, id string) catalog.BillingSubscription {
	e.t.Helper()
	b, err := e.cat.GetBillingSubscription(e.ctx, e.db, tn.ID, id, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// keyRecord returns the newest record queued for the workers of the key.
func (e *env) keyRecord(key string) proxycfg.KeyRecord {
	e.t.Helper()
	var raw []byte
	if err := e.db.QueryRow(e.ctx, `SELECT record FROM key_outbox WHERE digest = $1 ORDER BY id DESC LIMIT 1`,
		proxycfg.Digest(secret, key)).Scan(&raw); err != nil {
		e.t.Fatal(err)
	}
	var rec proxycfg.KeyRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		e.t.Fatal(err)
	}
	return rec
}

// event is a Stripe event for a webhook.
type event struct {
	ID      string
	Type    string
	Account string
	Created time.Time
	Live    bool
	// APIVersion defaults to a newer version than stripe-go's, as a
	// current endpoint would send.
	APIVersion string
	Object     map[string]any
}

var evSeq atomic.Int64

func newEventID() string { return fmt.Sprintf("evt_test_%d_%d", time.Now().UnixNano(), evSeq.Add(1)) }

func (ev event) payload() []byte {
	if ev.ID == "" {
		panic("event without id")
	}
	created := ev.Created
	if created.IsZero() {
		created = time.Now()
	}
	v := ev.APIVersion
	if v == "" {
		v = "2025-04-30.basil"
	}
	body := map[string]any{"id": ev.ID, "object": "event", "type": ev.Type, "api_version": v,
		"created": created.Unix(), "livemode": ev.Live, "pending_webhooks": 1,
		"data": map[string]any{"object": ev.Object}}
	if ev.Account != "" {
		body["account"] = ev.Account
	}
	raw, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return raw
}

// deliver posts a signed event to the webhook and returns the status and
// the decoded answer.
func (e *env) deliver(ev event) (int, map[string]any) {
	e.t.Helper()
	return e.deliverSigned(ev.payload(), whsec, time.Now())
}

func (e *env) deliverSigned(payload []byte, key string, at time.Time) (int, map[string]any) {
	e.t.Helper()
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: key, Timestamp: at})
	req, err := http.NewRequest(http.MethodPost, e.hook.URL+"/webhooks/stripe", bytes.NewReader(payload))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Stripe-Signature", sp.Header)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// apply delivers ev and returns its outcome, failing unless it got 200.
func (e *env) apply(ev event) string {
	e.t.Helper()
	status, out := e.deliver(ev)
	if status != http.StatusOK {
		e.t.Fatalf("webhook answered %d %v", status, out)
	}
	s, _ := out["outcome"].(string)
	return s
}

// Event objects, in the newer API shape unless said otherwise.

func checkoutCompleted(subID, stripeSub, customer string) map[string]any {
	return map[string]any{"id": "cs_test_" + subID[:8], "object": "checkout.session", "mode": "subscription",
		"status": "complete", "payment_status": "paid", "client_reference_id": subID,
		"subscription": stripeSub, "customer": customer,
		"metadata": map[string]any{"tollgate_subscription_id": subID}}
}

func subscriptionObj(subID, stripeSub, status string, start, end time.Time, priceIDs ...string) map[string]any {
	var items []any
	for i, p := range priceIDs {
		items = append(items, map[string]any{"id": fmt.Sprintf("si_%d", i), "price": map[string]any{"id": p},
			"current_period_start": start.Unix(), "current_period_end": end.Unix()})
	}
	return map[string]any{"id": stripeSub, "object": "subscription", "status": status,
		"metadata": map[string]any{"tollgate_subscription_id": subID}, "cancel_at_period_end": false,
		"items": map[string]any{"object": "list", "data": items}}
}

func invoiceObj(id, stripeSub, status string, due, paid int64) map[string]any {
	return map[string]any{"id": id, "object": "invoice", "status": status, "currency": "usd",
		"amount_due": due, "amount_paid": paid, "created": time.Now().Unix(),
		"hosted_invoice_url": "https://invoice.stripe.com/i/" + id,
		"parent":             map[string]any{"subscription_details": map[string]any{"subscription": stripeSub}},
		"lines": map[string]any{"data": []any{map[string]any{"period": map[string]any{
			"start": time.Now().Unix(), "end": time.Now().AddDate(0, 1, 0).Unix()}}}}}
}

func (e *env) countEvents(id string) int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow(e.ctx, `SELECT count(*) FROM stripe_events WHERE id = $1`, id).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) eventOutcome(id string) string {
	e.t.Helper()
	var s string
	if err := e.db.QueryRow(e.ctx, `SELECT outcome FROM stripe_events WHERE id = $1`, id).Scan(&s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// platformPaths are the only requests sent without Stripe-Account.
var platformPaths = []string{"/v1/accounts", "/v1/account_links", "/v1/webhook_endpoints"}

// checkRequests fails the test unless every recorded request names an
// account (except the platform's), every POST an idempotency key.
func checkRequests(t testing.TB, reqs []stripetest.Request) {
	t.Helper()
	for _, q := range reqs {
		platform := false
		for _, p := range platformPaths {
			if q.Path == p || strings.HasPrefix(q.Path, p+"/") {
				platform = true
			}
		}
		if platform && q.Account != "" {
			t.Errorf("%s %s: platform call carries Stripe-Account %q", q.Method, q.Path, q.Account)
		}
		if !platform && !strings.HasPrefix(q.Account, "acct_") {
			t.Errorf("%s %s: no Stripe-Account", q.Method, q.Path)
		}
		if q.Method == http.MethodPost && !strings.HasPrefix(q.IdempotencyKey, "tg:") {
			t.Errorf("%s %s: Idempotency-Key %q", q.Method, q.Path, q.IdempotencyKey)
		}
	}
}

func signedHeader(payload []byte, key string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: key, Timestamp: at}).Header
}

func isUnavailable(err error, reason string) bool {
	var ue *billing.UnavailableError
	return errors.As(err, &ue) && ue.Reason == reason && errors.Is(err, billing.ErrUnavailable)
}
