package metering

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/billing/stripe"
	"github.com/tollgate/tollgate/billing/stripetest"
)

// pendingReports writes n closed windows of usage for each of subs and
// produces their reports; it returns the requests served.
func (f *fixture) pendingReports(subs []sub, windows int, base time.Time) int64 {
	f.t.Helper()
	var total int64
	for i := range windows {
		for j, s := range subs {
			n := int64(1 + (i+j)%7)
			f.usage(s, base.Add(time.Duration(i)*time.Minute), 2, n)
			total += n
		}
	}
	f.produce(f.producer(at(base.Add(time.Duration(windows+1)*time.Minute))), base, base.Add(time.Duration(windows)*time.Minute))
	return total
}

func TestSenderSendsEachReportOnItsAccountWithItsIdentifier(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.sub(subOpts{price: meteredPrice})
	otherTenant, otherAccount := f.newTenant(true)
	o := f.sub(subOpts{tenant: otherTenant, price: meteredPrice})
	base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	total := f.pendingReports([]sub{s, o}, 3, base)

	snd, rec := f.sender(SenderOptions{})
	if res := f.drain(snd); res.Sent != 6 || res.Claimed != 6 {
		t.Fatalf("sender %+v, want 6 sent", res)
	}
	byIdent := map[string]report{}
	for _, r := range f.reports() {
		if r.Status != StatusSent || r.Attempts != 1 {
			t.Errorf("report %+v not sent once", r)
		}
		byIdent[r.Identifier] = r
	}
	reqs := rec.Find("POST", "/v1/billing/meter_events")
	if len(reqs) != 6 {
		t.Fatalf("%d meter events, want 6", len(reqs))
	}
	for _, q := range reqs {
		r, ok := byIdent[q.Form.Get("identifier")]
		if !ok {
			t.Fatalf("meter event with unknown identifier %v", q.Form)
		}
		wantAccount := f.account
		if r.Sub == o.id {
			wantAccount = otherAccount
		}
		if q.Status != 200 || q.Account != wantAccount || q.IdempotencyKey != stripe.MeterEventIdempotencyKey(r.Identifier) ||
			q.Form.Get("event_name") != "tollgate_requests" ||
			q.Form.Get("payload["+stripe.MeterCustomerKey+"]") != r.Customer ||
			q.Form.Get("payload["+stripe.MeterValueKey+"]") != strconv.FormatInt(r.Value, 10) ||
			q.Form.Get("timestamp") != strconv.FormatInt(r.Window.Unix(), 10) {
			t.Errorf("meter event %+v does not match report %+v", q, r)
		}
	}
	if sum := checkOnceEach(t, sentEvents(t, rec)); sum != total {
		t.Errorf("sent %d requests, served %d", sum, total)
	}
	if res := f.drain(snd); res.Claimed != 0 {
		t.Errorf("a sent report was claimed again: %+v", res)
	}
}

// crashingClient passes events to a real client, and calls crash after
// the first one Stripe accepted.
type crashingClient struct {
	Client
	crash   func()
	crashed atomic.Bool
}

func (c *crashingClient) MeterEvent(ctx context.Context, account, eventName, identifier, customer string, value int64, ts time.Time) error {
	err := c.Client.MeterEvent(ctx, account, eventName, identifier, customer, value, ts)
	if err == nil && c.crashed.CompareAndSwap(false, true) {
		c.crash()
	}
	return err
}

func TestCrashBetweenSendAndMarkResendsTheSameIdentifier(t *testing.T) {
	t.Parallel()
	t.Run("the process died after Stripe answered", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		s := f.sub(subOpts{price: meteredPrice})
		total := f.pendingReports([]sub{s}, 5, time.Now().UTC().Truncate(time.Minute).Add(-time.Hour))
		client, rec := stripetest.New(t)
		// The sender's database session dies with its transaction open (the
		// session holding the claimed rows), as when its process is killed.
		kill := func() {
			f.exec(`SELECT pg_terminate_backend(pid) FROM pg_locks
				WHERE relation = 'meter_reports'::regclass AND pid <> pg_backend_pid()`)
		}
		first, _ := f.sender(SenderOptions{Client: &crashingClient{Client: client, crash: kill}, Concurrency: 1})
		if _, err := first.Step(context.Background()); err == nil {
			t.Fatal("the step survived its session")
		}
		for _, r := range f.reports() {
			if r.Status != StatusPending || r.Attempts != 0 {
				t.Fatalf("report %v marked by the dead sender", r)
			}
		}
		accepted := sentEvents(t, rec)
		if len(accepted) == 0 {
			t.Fatal("nothing accepted before the crash")
		}

		second, _ := f.sender(SenderOptions{Client: client})
		if res := f.drain(second); res.Sent != 5 {
			t.Fatalf("restarted sender %+v", res)
		}
		events := sentEvents(t, rec)
		for id := range accepted {
			if len(events[id]) != 2 {
				t.Errorf("identifier %s sent %d times, want again after the crash", id, len(events[id]))
			}
		}
		if sum := checkOnceEach(t, events); sum != total {
			t.Errorf("Stripe counts %d, served %d", sum, total)
		}
	})

	t.Run("a graceful stop marks what Stripe accepted", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		s := f.sub(subOpts{price: meteredPrice})
		total := f.pendingReports([]sub{s}, 5, time.Now().UTC().Truncate(time.Minute).Add(-time.Hour))
		client, rec := stripetest.New(t)
		ctx, stop := context.WithCancel(context.Background())
		first, _ := f.sender(SenderOptions{Client: &crashingClient{Client: client, crash: stop}, Concurrency: 1})
		res, err := first.Step(ctx)
		if !errors.Is(err, context.Canceled) || res.Sent != 1 {
			t.Fatalf("stopped step %+v %v, want one sent and the stop", res, err)
		}
		second, _ := f.sender(SenderOptions{Client: client})
		if res := f.drain(second); res.Sent != 4 {
			t.Fatalf("restarted sender %+v, want the 4 others", res)
		}
		events := sentEvents(t, rec)
		for id, vs := range events {
			if len(vs) != 1 {
				t.Errorf("identifier %s sent %d times", id, len(vs))
			}
		}
		if sum := checkOnceEach(t, events); sum != total {
			t.Errorf("Stripe counts %d, served %d", sum, total)
		}
		for _, r := range f.reports() {
			if r.Attempts != 1 {
				t.Errorf("report %v tried %d times", r, r.Attempts)
			}
		}
	})

	t.Run("the mark failed", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		s := f.sub(subOpts{price: meteredPrice})
		total := f.pendingReports([]sub{s}, 4, time.Now().UTC().Truncate(time.Minute).Add(-time.Hour))
		// The database refuses the marks (as when the connection dies after
		// Stripe answered).
		f.exec(`CREATE FUNCTION refuse_mark() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'mark refused by the test'; END $$`)
		f.exec(`CREATE TRIGGER refuse_mark BEFORE UPDATE ON meter_reports FOR EACH ROW EXECUTE FUNCTION refuse_mark()`)
		client, rec := stripetest.New(t)
		first, _ := f.sender(SenderOptions{Client: client})
		if _, err := first.Step(context.Background()); err == nil || !strings.Contains(err.Error(), "mark refused") {
			t.Fatalf("step with failing marks: %v", err)
		}
		if n := len(sentEvents(t, rec)); n != 4 {
			t.Fatalf("%d identifiers accepted before the mark failed, want 4", n)
		}
		f.exec(`DROP TRIGGER refuse_mark ON meter_reports`)
		second, _ := f.sender(SenderOptions{Client: client})
		if res := f.drain(second); res.Sent != 4 {
			t.Fatalf("second sender %+v", res)
		}
		events := sentEvents(t, rec)
		for id, vs := range events {
			if len(vs) != 2 {
				t.Errorf("identifier %s sent %d times, want twice", id, len(vs))
			}
		}
		if sum := checkOnceEach(t, events); sum != total {
			t.Errorf("Stripe counts %d, served %d", sum, total)
		}
	})
}

// answerer answers meter events itself when answer says so (a status and a
// Stripe error body), else passes them to stripe-mock.
type answerer struct {
	answer func(form url.Values) (status int, message string)
}

func (a *answerer) RoundTrip(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	if status, msg := a.answer(form); status != 0 {
		typ := "invalid_request_error"
		if status >= 500 {
			typ = "api_error"
		}
		b := `{"error":{"type":"` + typ + `","message":"` + msg + `"}}`
		return &http.Response{StatusCode: status, Status: strconv.Itoa(status) + " " + http.StatusText(status),
			Header: http.Header{"Content-Type": {"application/json"}, "Request-Id": {"req_test"}},
			Body:   io.NopCloser(strings.NewReader(b)), ContentLength: int64(len(b)), Request: r, Proto: "HTTP/1.1",
			ProtoMajor: 1, ProtoMinor: 1}, nil
	}
	return http.DefaultTransport.RoundTrip(r)
}

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestSenderMarksRefusalsAndRetriesFailures(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	refused := f.sub(subOpts{price: meteredPrice})
	flaky := f.sub(subOpts{price: meteredPrice})
	unreachable := f.sub(subOpts{price: meteredPrice})
	ok := f.sub(subOpts{price: meteredPrice})
	base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	f.pendingReports([]sub{refused, flaky, unreachable, ok}, 1, base)

	var flakyCalls, unreachableCalls atomic.Int32
	client, rec := stripetest.New(t)
	rec.Base = &answerer{answer: func(form url.Values) (int, string) {
		switch form.Get("payload[stripe_customer_id]") {
		case refused.customer:
			return 400, "No such customer: " + refused.customer
		case flaky.customer:
			if flakyCalls.Add(1) <= 2 {
				return 500, "Stripe had a problem"
			}
		case unreachable.customer:
			if unreachableCalls.Add(1) == 1 { // its second try
				return 429, "Too many requests"
			}
		}
		return 0, ""
	}}
	var once atomic.Bool
	rec.Fail = func(q stripetest.Request) bool { // the first try of one event dies in transit
		return q.Form.Get("payload[stripe_customer_id]") == unreachable.customer && once.CompareAndSwap(false, true)
	}
	c := &clock{now: time.Now()}
	snd, _ := f.sender(SenderOptions{Client: client, Now: c.Now})

	if res := f.drain(snd); res.Sent != 1 || res.Refused != 1 || res.Failed != 2 {
		t.Fatalf("first round %+v, want 1 sent, 1 refused, 2 to retry", res)
	}
	// Failed rows wait for their retry time; the rest is not held up.
	if res := f.drain(snd); res.Claimed != 0 {
		t.Fatalf("a failed row was retried at once: %+v", res)
	}
	for range 5 {
		c.Add(maxRetryDelay)
		f.drain(snd)
	}
	byCustomer := map[string]report{}
	for _, r := range f.reports() {
		byCustomer[r.Customer] = r
	}
	if r := byCustomer[refused.customer]; r.Status != StatusRefused || !strings.Contains(r.LastError, "No such customer") ||
		r.Attempts != 1 {
		t.Errorf("refused report %+v", r)
	}
	if r := byCustomer[flaky.customer]; r.Status != StatusSent || r.Attempts != 3 || r.LastError != "" {
		t.Errorf("flaky report %+v, want sent at the third attempt", r)
	}
	if r := byCustomer[unreachable.customer]; r.Status != StatusSent || r.Attempts != 3 {
		t.Errorf("unreachable report %+v, want sent at the third attempt (transport error, 429)", r)
	}
	if r := byCustomer[ok.customer]; r.Status != StatusSent || r.Attempts != 1 {
		t.Errorf("ok report %+v", r)
	}
	// The sender's counts, for metrics: two failed tries each of flaky and
	// unreachable.
	if got, want := snd.Stats().Snapshot(), map[string]int64{"sent": 3, "refused": 1, "expired": 0, "retried": 4}; !maps.Equal(got, want) {
		t.Errorf("sender stats %v, want %v", got, want)
	}
	// Every try of one identifier carried the same idempotency key.
	keys := map[string]map[string]bool{}
	for _, q := range rec.Find("POST", "/v1/billing/meter_events") {
		id := q.Form.Get("identifier")
		if keys[id] == nil {
			keys[id] = map[string]bool{}
		}
		keys[id][q.IdempotencyKey] = true
	}
	for id, ks := range keys {
		if len(ks) != 1 {
			t.Errorf("identifier %s sent with idempotency keys %v", id, ks)
		}
	}
}

func TestTwoSendersNeverSendOneReportTwice(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	subs := make([]sub, 10)
	for i := range subs {
		subs[i] = f.sub(subOpts{price: meteredPrice})
	}
	total := f.pendingReports(subs, 30, time.Now().UTC().Truncate(time.Minute).Add(-2*time.Hour))
	client, rec := stripetest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range 2 {
		snd, _ := f.sender(SenderOptions{Client: client, Batch: 25, Concurrency: 4})
		wg.Add(1)
		go func() { defer wg.Done(); _ = snd.Run(ctx) }()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var pending int
		f.scan(`SELECT count(*) FROM meter_reports WHERE status <> 'sent'`, nil, &pending)
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d reports still not sent", pending)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	events := sentEvents(t, rec)
	if len(events) != 300 {
		t.Fatalf("%d identifiers sent, want 300", len(events))
	}
	for id, vs := range events {
		if len(vs) != 1 {
			t.Errorf("identifier %s sent %d times", id, len(vs))
		}
	}
	if sum := checkOnceEach(t, events); sum != total {
		t.Errorf("sent %d, served %d", sum, total)
	}
}
