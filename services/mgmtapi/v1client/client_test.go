package v1client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/mgmtapi"
	"github.com/tollgate/tollgate/services/mgmtapi/v1client"
	"github.com/tollgate/tollgate/services/mgmtapi/v1client/internal/gen"
	"github.com/tollgate/tollgate/services/storetest"
)

// TestClientIsGenerated fails when client.gen.go is not what the generator
// writes from the document /v1 serves (go generate
// ./services/mgmtapi/v1client rewrites it), or when that document is not
// the reviewed one (services/mgmtapi/testdata/openapi.json).
func TestClientIsGenerated(t *testing.T) {
	t.Parallel()
	golden, err := os.ReadFile("../testdata/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(golden, mgmtapi.OpenAPI()) {
		t.Fatal("the served document differs from services/mgmtapi/testdata/openapi.json: review it there first (go test -run OpenAPI -update in services/mgmtapi)")
	}
	want, err := gen.Client(golden)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("client.gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("client.gen.go is stale against the /v1 document: run go generate ./services/mgmtapi/v1client")
	}
}

// flaky answers through h, failing the first failures calls in the way
// given: "lost" runs the request and loses its answer (a connection that
// broke after the server acted), "503" answers 503 without running it.
type flaky struct {
	h        http.Handler
	mode     string
	failures atomic.Int32
	seen     []http.Header
}

func (f *flaky) Do(req *http.Request) (*http.Response, error) {
	f.seen = append(f.seen, req.Header.Clone())
	if f.failures.Add(-1) >= 0 {
		switch f.mode {
		case "lost":
			if _, err := (v1client.Handler{H: f.h}).Do(req); err != nil {
				return nil, err
			}
			return nil, errors.New("read: connection reset by peer")
		case "503":
			return &http.Response{StatusCode: 503, Header: http.Header{"Retry-After": {"0"}},
				Body: io.NopCloser(bytes.NewReader(nil)), Request: req}, nil
		}
	}
	return v1client.Handler{H: f.h}.Do(req)
}

// TestClient drives the real /v1 handler through the client: auth, typed
// answers, problems as *Error, retries that never duplicate a create, and
// If-Match.
func TestClient(t *testing.T) {
	t.Parallel()
	db := storetest.NewPool(t)
	const op = "operator-token"
	h := mgmtapi.New(mgmtapi.Options{DB: db, Secret: []byte("client-test"), OperatorToken: op, AllowPrivateUpstreams: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx := context.Background()
	operator, err := v1client.New(v1client.Options{BaseURL: "http://control", Token: op, HTTPClient: v1client.Handler{H: h}})
	if err != nil {
		t.Fatal(err)
	}
	created, err := v1client.Ok(operator.CreateTenantWithResponse(ctx, nil, v1client.TenantRequest{Name: "Acme", Slug: "acme"}))
	if err != nil {
		t.Fatal(err)
	}
	if created.JSON201.AdminToken == nil {
		t.Fatal("no admin token")
	}
	token := *created.JSON201.AdminToken
	count := func() int {
		var n int
		if err := db.QueryRow(ctx, "SELECT count(*) FROM upstreams").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	t.Run("problems", func(t *testing.T) {
		c, _ := v1client.New(v1client.Options{BaseURL: "http://control", Token: token, HTTPClient: v1client.Handler{H: h}})
		name := "u"
		_, err := v1client.Ok(c.CreateUpstreamWithResponse(ctx, nil, v1client.UpstreamRequest{Name: &name, Targets: &[]v1client.Target{}}))
		var e *v1client.Error
		if !errors.As(err, &e) || e.StatusCode != 422 || e.Code() != "validation" {
			t.Fatalf("error %v, want a 422 validation *Error", err)
		}
		if msg := err.Error(); msg != "POST /v1/upstreams: 422 validation: targets: at least one target is required" {
			t.Errorf("message %q", msg)
		}
		bad, _ := v1client.New(v1client.Options{BaseURL: "http://control", Token: "nope", HTTPClient: v1client.Handler{H: h}})
		if _, err := v1client.Ok(bad.ListApisWithResponse(ctx, nil)); !errors.As(err, &e) || e.StatusCode != 401 {
			t.Fatalf("bad token: %v", err)
		}
	})

	for _, mode := range []string{"lost", "503"} {
		t.Run("retry after "+mode, func(t *testing.T) {
			f := &flaky{h: h, mode: mode}
			f.failures.Store(2)
			c, _ := v1client.New(v1client.Options{BaseURL: "http://control", Token: token, HTTPClient: f, Backoff: time.Millisecond})
			before := count()
			name := "pool-" + mode
			r, err := v1client.Ok(c.CreateUpstreamWithResponse(ctx, nil, v1client.UpstreamRequest{Name: &name,
				Targets: &[]v1client.Target{{Url: "http://127.0.0.1:9"}}}))
			if err != nil {
				t.Fatal(err)
			}
			if got := count(); got != before+1 {
				t.Fatalf("%d upstreams made, want 1", got-before)
			}
			if len(f.seen) != 3 {
				t.Fatalf("%d attempts, want 3", len(f.seen))
			}
			key := f.seen[0].Get("Idempotency-Key")
			for _, hd := range f.seen {
				if hd.Get("Idempotency-Key") != key || key == "" {
					t.Fatalf("attempts with Idempotency-Key %q and %q, want one key", key, hd.Get("Idempotency-Key"))
				}
			}
			if want := mode == "lost"; v1client.Replayed(r.HTTPResponse) != want {
				t.Errorf("replayed %v, want %v", v1client.Replayed(r.HTTPResponse), want)
			}
		})
	}

	t.Run("no retry of a refusal", func(t *testing.T) {
		f := &flaky{h: h}
		c, _ := v1client.New(v1client.Options{BaseURL: "http://control", Token: token, HTTPClient: f, Backoff: time.Millisecond})
		if _, err := v1client.Ok(c.GetUpstreamWithResponse(ctx, "00000000-0000-0000-0000-000000000000")); err == nil {
			t.Fatal("no error for a missing upstream")
		}
		if len(f.seen) != 1 {
			t.Fatalf("%d attempts of a 404, want 1", len(f.seen))
		}
	})

	t.Run("if-match", func(t *testing.T) {
		c, _ := v1client.New(v1client.Options{BaseURL: "http://control", Token: token, HTTPClient: v1client.Handler{H: h}})
		name := "guarded"
		up, err := v1client.Ok(c.CreateUpstreamWithResponse(ctx, nil, v1client.UpstreamRequest{Name: &name,
			Targets: &[]v1client.Target{{Url: "http://127.0.0.1:9"}}}))
		if err != nil {
			t.Fatal(err)
		}
		id := up.JSON201.Id
		read, err := v1client.Ok(c.GetUpstreamWithResponse(ctx, id))
		if err != nil {
			t.Fatal(err)
		}
		etag := v1client.ETag(read.HTTPResponse)
		other := "changed"
		if _, err := v1client.Ok(c.UpdateUpstreamWithResponse(ctx, id, nil, v1client.UpstreamRequest{Name: &other})); err != nil {
			t.Fatal(err)
		}
		mine := "mine"
		_, err = v1client.Ok(c.UpdateUpstreamWithResponse(ctx, id, &v1client.UpdateUpstreamParams{IfMatch: v1client.IfMatch(etag)},
			v1client.UpstreamRequest{Name: &mine}))
		var e *v1client.Error
		if !errors.As(err, &e) || e.StatusCode != 412 || e.Code() != "precondition-failed" {
			t.Fatalf("stale If-Match: %v, want 412 precondition-failed", err)
		}
	})

	t.Run("over http", func(t *testing.T) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		c, _ := v1client.New(v1client.Options{BaseURL: srv.URL + "/", Token: token})
		r, err := v1client.Ok(c.GetTenantWithResponse(ctx))
		if err != nil {
			t.Fatal(err)
		}
		if r.JSON200.Slug != "acme" {
			t.Fatalf("tenant %+v", r.JSON200)
		}
	})
}
