package v1client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// DefaultRetries is how many times a request is sent again after a failure
// that a retry can cure, unless Options.Retries says otherwise.
const DefaultRetries = 3

// Options configure New.
type Options struct {
	// BaseURL is the control plane's URL, such as http://localhost:8080;
	// the /v1 paths are appended to it.
	BaseURL string
	// Token is the bearer token of every request: a tenant admin token, or
	// the operator token for operator calls (POST /v1/tenants). "" sends
	// none.
	Token string
	// HTTPClient sends the requests. If nil, an http.Client with a 30 s
	// timeout is used. Tests and the CLI's in-process mode pass a Doer
	// that serves the request with a handler.
	HTTPClient HttpRequestDoer
	// Retries is how many times a request is sent again after a transport
	// error, a 502, 503 or 504, or a 409 idempotency-key-in-use; 0 means
	// DefaultRetries, a negative value none. Every method of /v1 is safe to
	// repeat except POST, so each POST is sent with an Idempotency-Key
	// (one of its own unless the caller set one): a retried create answers
	// the first answer instead of making a duplicate.
	Retries int
	// Backoff is the wait before the first retry, doubled for each next
	// one and replaced by the answer's Retry-After when it has one (at
	// most 10 s). If 0, 200 ms.
	Backoff time.Duration
}

// New returns a client of /v1 configured by o.
func New(o Options) (*ClientWithResponses, error) {
	if o.BaseURL == "" {
		return nil, errors.New("v1client: a base URL is required")
	}
	doer := o.HTTPClient
	if doer == nil {
		doer = &http.Client{Timeout: 30 * time.Second}
	}
	retries := o.Retries
	switch {
	case retries == 0:
		retries = DefaultRetries
	case retries < 0:
		retries = 0
	}
	backoff := o.Backoff
	if backoff <= 0 {
		backoff = 200 * time.Millisecond
	}
	opts := []ClientOption{WithHTTPClient(&retrier{next: doer, retries: retries, backoff: backoff})}
	if o.Token != "" {
		opts = append(opts, WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+o.Token)
			return nil
		}))
	}
	return NewClientWithResponses(strings.TrimSuffix(o.BaseURL, "/"), opts...)
}

// IfMatch is the If-Match parameter of a change that must only be made if
// the object still has etag (ETag of the answer that read it): a change
// made by someone else since answers 412 precondition-failed.
func IfMatch(etag string) *string {
	if etag == "" {
		return nil
	}
	return &etag
}

// ETag is the ETag of an answer ("" without one).
func ETag(resp *http.Response) string {
	if resp == nil {
		return ""
	}
	return resp.Header.Get("ETag")
}

// Replayed reports whether an answer is a replay of an earlier one under
// its Idempotency-Key (its secrets are then null).
func Replayed(resp *http.Response) bool {
	return resp != nil && resp.Header.Get("Idempotent-Replayed") == "true"
}

// NewIdempotencyKey returns a random Idempotency-Key.
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Error is an answer of /v1 that is not a success, with its problem
// details.
type Error struct {
	Method, Path string
	StatusCode   int
	// Problem is the answer's RFC 9457 problem document (zero when the
	// body was not one).
	Problem Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d", e.Method, e.Path, e.StatusCode)
	if code := e.Code(); code != "" {
		fmt.Fprintf(&b, " %s", code)
	}
	switch {
	case e.Problem.Errors != nil && len(*e.Problem.Errors) > 0:
		for i, f := range *e.Problem.Errors {
			sep := "; "
			if i == 0 {
				sep = ": "
			}
			fmt.Fprintf(&b, "%s%s: %s", sep, f.Field, f.Message)
		}
	case e.Problem.Detail != nil:
		fmt.Fprintf(&b, ": %s", *e.Problem.Detail)
	}
	return b.String()
}

// Code is the problem's stable code (the last part of its type:
// validation, not-found, precondition-failed, ...).
func (e *Error) Code() string {
	if i := strings.LastIndexByte(e.Problem.Type, '/'); i >= 0 {
		return e.Problem.Type[i+1:]
	}
	return e.Problem.Type
}

// Ok passes on the answer of a ...WithResponse method of
// ClientWithResponses when it is a 2xx, and turns any other into an
// *Error:
//
//	r, err := v1client.Ok(c.GetApiWithResponse(ctx, id))
func Ok[R any](r *R, err error) (*R, error) {
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errors.New("v1client: no answer")
	}
	v := reflect.ValueOf(r).Elem()
	resp, _ := v.FieldByName("HTTPResponse").Interface().(*http.Response)
	body, _ := v.FieldByName("Body").Interface().([]byte)
	if err := Check(resp, body, nil); err != nil {
		return nil, err
	}
	return r, nil
}

// Check returns nil for a 2xx answer and an *Error for any other; err is
// the error of sending the request, returned as it is.
func Check(resp *http.Response, body []byte, err error) error {
	if err != nil {
		return err
	}
	if resp == nil {
		return errors.New("v1client: no answer")
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	e := &Error{StatusCode: resp.StatusCode}
	if resp.Request != nil {
		e.Method, e.Path = resp.Request.Method, resp.Request.URL.Path
	}
	if json.Unmarshal(body, &e.Problem) != nil || e.Problem.Status == 0 {
		detail := strings.TrimSpace(string(body))
		if len(detail) > 200 {
			detail = detail[:200] + "..."
		}
		e.Problem = Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
		if detail != "" {
			e.Problem.Detail = &detail
		}
	}
	return e
}

// retrier sends requests again after failures a retry can cure.
type retrier struct {
	next    HttpRequestDoer
	retries int
	backoff time.Duration
}

func (r *retrier) Do(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && req.Header.Get("Idempotency-Key") == "" {
		req.Header.Set("Idempotency-Key", NewIdempotencyKey())
	}
	wait := r.backoff
	for attempt := 0; ; attempt++ {
		resp, err := r.next.Do(req)
		if attempt >= r.retries || !retryable(resp, err) || (req.Body != nil && req.GetBody == nil) {
			return resp, err
		}
		if resp != nil {
			if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s >= 0 {
				wait = min(time.Duration(s)*time.Second, 10*time.Second)
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
		}
		t := time.NewTimer(wait)
		select {
		case <-req.Context().Done():
			t.Stop()
			return nil, req.Context().Err()
		case <-t.C:
		}
		wait *= 2
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req.Body = body
		}
	}
}

// retryable reports whether an answer (or the failure to get one) may be
// cured by sending the same request again.
func retryable(resp *http.Response, err error) bool {
	if err != nil {
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	case http.StatusConflict:
		// Only the wait for a first request under the same key.
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return rerr == nil && bytes.Contains(body, []byte("idempotency-key-in-use"))
	}
	return false
}

// Handler is an HttpRequestDoer that serves each request with h in
// process, as the server would: the CLI drives the same handler that
// serves /v1 through the same client.
type Handler struct{ H http.Handler }

// Do serves req with the handler.
func (d Handler) Do(req *http.Request) (*http.Response, error) {
	rec := &responseRecorder{header: http.Header{}}
	if req.Body == nil {
		req.Body = http.NoBody
	}
	req.RequestURI = req.URL.RequestURI()
	d.H.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &http.Response{Status: strconv.Itoa(rec.status) + " " + http.StatusText(rec.status), StatusCode: rec.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: rec.header,
		Body: io.NopCloser(bytes.NewReader(rec.body.Bytes())), ContentLength: int64(rec.body.Len()), Request: req}, nil
}

type responseRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *responseRecorder) Header() http.Header { return r.header }

func (r *responseRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *responseRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
