// Package stripetest gives tests a Stripe API to talk to (stripe-mock) and
// a recording transport, so that they can assert on every request Tollgate
// sends: method, path, Stripe-Account, Idempotency-Key and form body.
// stripe-mock keeps no state and sends no webhooks; tests drive state
// changes with webhooks signed by stripe-go's webhook package.
package stripetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/tollgate/tollgate/billing/stripe"
)

// DefaultURL is where deploy/local/services.sh --stripe-mock runs stripe-mock.
const DefaultURL = "http://127.0.0.1:12111"

// SecretKey is the test-mode platform key the tests use (stripe-mock takes
// any key of the right shape).
const SecretKey = "sk_test_tollgate"

var (
	startOnce sync.Once
	started   string
	startErr  error
)

// URL returns the base URL of a stripe-mock: TOLLGATE_STRIPE_API_URL when
// set, else 127.0.0.1:12111 when one answers there, else one started from
// PATH or ~/go/bin on a free port (once per test binary; it exits with the
// binary). Without any, the test is skipped, or fails when CI=true.
func URL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("TOLLGATE_STRIPE_API_URL"); u != "" {
		if err := probe(u); err != nil {
			t.Fatalf("stripetest: TOLLGATE_STRIPE_API_URL=%s does not answer: %v", u, err)
		}
		return u
	}
	if probe(DefaultURL) == nil {
		return DefaultURL
	}
	startOnce.Do(func() { started, startErr = start() })
	if startErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("stripetest: no stripe-mock: %v", startErr)
		}
		t.Skipf("stripetest: no stripe-mock (install: go install github.com/stripe/stripe-mock@v0.203.0): %v", startErr)
	}
	return started
}

// probe checks that a stripe-mock answers at base.
func probe(base string) error {
	req, err := http.NewRequest(http.MethodGet, strings.TrimRight(base, "/")+"/v1/customers?limit=1", nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(SecretKey, "")
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v1/customers: %s", resp.Status)
	}
	return nil
}

// binary finds stripe-mock on PATH or in the Go bin directory.
func binary() (string, error) {
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p, nil
	}
	var dirs []string
	if gb := os.Getenv("GOBIN"); gb != "" {
		dirs = append(dirs, gb)
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "stripe-mock")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("stripe-mock not found on PATH or in the Go bin directory")
}

// start runs stripe-mock on a free loopback port and waits until it answers.
func start() (string, error) {
	bin, err := binary()
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "-http-addr", addr)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { _ = cmd.Wait() }()
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := probe(base); err == nil {
			return base, nil
		} else if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			return "", fmt.Errorf("stripe-mock at %s did not answer: %w", base, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Request is one request sent to Stripe, as recorded.
type Request struct {
	Method string
	// Path is the URL path, e.g. /v1/products.
	Path string
	// Account is the Stripe-Account header ("" for a platform call).
	Account string
	// IdempotencyKey is the Idempotency-Key header.
	IdempotencyKey string
	// Form is the decoded form body (POST) or query (GET).
	Form url.Values
	// Status is the answer's status code; 0 when the request failed in transit.
	Status int
}

// Recorder is an http.RoundTripper that records every request before
// passing it to Base. Intercept, when set, may answer a request itself, to
// inject failures.
type Recorder struct {
	// Base sends the requests. If nil, http.DefaultTransport.
	Base http.RoundTripper
	// Fail, if set and returning true, makes the request fail in transit
	// with ErrTransport (after it was recorded).
	Fail func(r Request) bool
	// Intercept, if set, sees each request after it was recorded: a
	// non-nil response or error is the answer (Base is not called); nil,
	// nil passes the request on. ErrorResponse builds Stripe's error
	// answers.
	Intercept func(r Request) (*http.Response, error)

	mu   sync.Mutex
	reqs []Request
}

// RoundTrip records r and sends it.
func (rec *Recorder) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	form, _ := url.ParseQuery(string(body))
	if r.Method == http.MethodGet || r.Method == http.MethodDelete {
		form = r.URL.Query()
	}
	q := Request{Method: r.Method, Path: r.URL.Path, Account: r.Header.Get("Stripe-Account"),
		IdempotencyKey: r.Header.Get("Idempotency-Key"), Form: form}
	fail := rec.Fail != nil && rec.Fail(q)
	idx := rec.add(q)
	if fail {
		return nil, ErrTransport
	}
	if rec.Intercept != nil {
		resp, err := rec.Intercept(q)
		if resp != nil {
			resp.Request = r
			rec.mu.Lock()
			rec.reqs[idx].Status = resp.StatusCode
			rec.mu.Unlock()
		}
		if resp != nil || err != nil {
			return resp, err
		}
	}
	base := rec.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(r)
	if err == nil {
		rec.mu.Lock()
		rec.reqs[idx].Status = resp.StatusCode
		rec.mu.Unlock()
	}
	return resp, err
}

func (rec *Recorder) add(q Request) int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.reqs = append(rec.reqs, q)
	return len(rec.reqs) - 1
}

// Requests returns a copy of every request recorded so far, in order.
func (rec *Recorder) Requests() []Request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]Request(nil), rec.reqs...)
}

// Find returns the recorded requests with this method and path prefix.
func (rec *Recorder) Find(method, pathPrefix string) []Request {
	var out []Request
	for _, q := range rec.Requests() {
		if q.Method == method && strings.HasPrefix(q.Path, pathPrefix) {
			out = append(out, q)
		}
	}
	return out
}

// Reset forgets the recorded requests.
func (rec *Recorder) Reset() {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.reqs = nil
}

// ErrTransport is the error of a request failed in transit on purpose.
var ErrTransport = errors.New("stripetest: injected transport failure")

// ErrorResponse is a Stripe error answer with status, error type (e.g.
// "invalid_request_error"), code (e.g. "resource_missing") and message.
func ErrorResponse(status int, typ, code, msg string) *http.Response {
	body := fmt.Sprintf(`{"error":{"type":%q,"code":%q,"message":%q}}`, typ, code, msg)
	return &http.Response{StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Header: http.Header{"Content-Type": {"application/json"}, "Request-Id": {"req_stripetest"}},
		Body:   io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), ProtoMajor: 1, ProtoMinor: 1}
}

// New returns a client of a stripe-mock (see URL) whose requests go through
// a Recorder, and the Recorder. stripe-go's own network retries are off, so
// that every attempt is the caller's.
func New(t testing.TB) (*stripe.Client, *Recorder) {
	t.Helper()
	rec := &Recorder{}
	c, err := stripe.New(stripe.Config{SecretKey: SecretKey, URL: URL(t),
		HTTPClient: &http.Client{Transport: rec, Timeout: 10 * time.Second}, MaxNetworkRetries: new(int64)})
	if err != nil {
		t.Fatal(err)
	}
	return c, rec
}

// Sign returns the Stripe-Signature header of payload signed with the
// webhook secret at time at (time.Now() when zero), made by stripe-go's
// webhook.GenerateTestSignedPayload, so that tests outside billing need not
// import stripe-go.
func Sign(payload []byte, secret string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: at}).Header
}
