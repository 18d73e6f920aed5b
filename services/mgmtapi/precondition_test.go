package mgmtapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/catalog"
)

// TestETagIfMatch: reads answer a strong ETag that changes with the object;
// PATCH, PUT and DELETE with a stale If-Match answer 412 and change nothing
// (no audit entry, no new generation), with the current one or * they go
// ahead, and the answer of a change carries the new ETag.
func TestETagIfMatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	f := e.fixture("acme")
	const petsYAML = "openapi: 3.0.3\ninfo: {title: Pets, version: '1'}\npaths:\n  /pets:\n    get:\n      responses: {'200': {description: ok}}\n"

	etag := func(path string) string {
		t.Helper()
		r := e.do("GET", path, f.token, nil)
		if r.Status != 200 {
			t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
		}
		tag := r.Header.Get("ETag")
		if !strings.HasPrefix(tag, `"`) || !strings.HasSuffix(tag, `"`) || len(tag) < 10 {
			t.Fatalf("GET %s: ETag %q, want a strong tag", path, tag)
		}
		return tag
	}

	for _, tc := range []struct {
		name, method, path string
		body               any
		want               int // with the current ETag
	}{
		{"patch upstream", "PATCH", "/v1/upstreams/" + f.upstream, map[string]any{"name": "renamed"}, 200},
		{"patch api", "PATCH", "/v1/apis/" + f.api, map[string]any{"published": true}, 200},
		{"patch plan", "PATCH", "/v1/plans/" + f.plan, map[string]any{"public": true}, 200},
		{"patch consumer", "PATCH", "/v1/consumers/" + f.consumer, map[string]any{"name": "Dev 2"}, 200},
		{"put portal", "PUT", "/v1/portal", map[string]any{"enabled": true}, 200},
		{"put portal oidc", "PUT", "/v1/portal/oidc", map[string]any{"issuer": "https://idp.example.com", "client_id": "portal", "client_secret": "s3cret"}, 200},
		{"revoke key", "DELETE", "/v1/keys/" + f.key, nil, 204},
		{"revoke admin token", "DELETE", "/v1/admin-tokens/" + f.adminTok, nil, 204},
	} {
		t.Run(tc.name, func(t *testing.T) {
			read := tc.path
			if strings.HasPrefix(read, "/v1/portal") {
				read = "/v1/portal"
			}
			cur := etag(read)
			if again := etag(read); again != cur {
				t.Fatalf("ETag changed between two reads: %s, %s", cur, again)
			}
			before := e.counts()
			for _, stale := range []string{`"stale"`, "W/" + cur, `"x", "y"`} {
				r := e.do(tc.method, tc.path, f.token, tc.body, "If-Match", stale)
				if r.Status != 412 || !strings.Contains(string(r.Body), "precondition-failed") {
					t.Fatalf("If-Match %s: %d %s, want 412 precondition-failed", stale, r.Status, r.Body)
				}
			}
			if after := e.counts(); !equalCounts(before, after) {
				t.Fatalf("a refused write changed the database: %v -> %v", before, after)
			}
			if etag(read) != cur {
				t.Fatal("a refused write changed the object")
			}
			r := e.do(tc.method, tc.path, f.token, tc.body, "If-Match", `"other", `+cur)
			if r.Status != tc.want {
				t.Fatalf("If-Match with the current ETag: %d %s", r.Status, r.Body)
			}
			if tc.want == 200 {
				if got, now := r.Header.Get("ETag"), etag(read); got != now || got == cur {
					t.Errorf("answer's ETag %s, GET's %s, before %s: want the new one", got, now, cur)
				}
			}
		})
	}

	t.Run("star", func(t *testing.T) {
		r := e.do("PATCH", "/v1/apis/"+f.api, f.token, map[string]any{"timeout_ms": 1000}, "If-Match", "*")
		if r.Status != 200 {
			t.Fatalf("If-Match *: %d %s", r.Status, r.Body)
		}
		// No document yet: no representation, which not even * matches.
		r = e.do("PUT", "/v1/apis/"+f.api+"/openapi", f.token, petsYAML, "If-Match", "*")
		if r.Status != 412 {
			t.Fatalf("If-Match * on a missing document: %d %s, want 412", r.Status, r.Body)
		}
		e.must(200, "PUT", "/v1/apis/"+f.api+"/openapi", f.token, petsYAML)
		cur := etag("/v1/apis/" + f.api + "/openapi")
		if r := e.do("PUT", "/v1/apis/"+f.api+"/openapi", f.token, petsYAML, "If-Match", cur); r.Status != 200 {
			t.Fatalf("If-Match with the document's ETag: %d %s", r.Status, r.Body)
		}
		// A missing object is not found, whatever If-Match says.
		if r := e.do("PATCH", "/v1/apis/00000000-0000-0000-0000-000000000000", f.token, map[string]any{"name": "x"},
			"If-Match", "*"); r.Status != 404 {
			t.Fatalf("If-Match on a missing API: %d, want 404", r.Status)
		}
	})

	t.Run("delete upstream", func(t *testing.T) {
		up := e.must(201, "POST", "/v1/upstreams", f.token, map[string]any{"name": "spare",
			"targets": []any{map[string]any{"url": "http://127.0.0.1:10"}}})["id"].(string)
		cur := etag("/v1/upstreams/" + up)
		e.must(200, "PATCH", "/v1/upstreams/"+up, f.token, map[string]any{"name": "spare2"})
		if r := e.do("DELETE", "/v1/upstreams/"+up, f.token, nil, "If-Match", cur); r.Status != 412 {
			t.Fatalf("DELETE with the ETag from before a change: %d %s", r.Status, r.Body)
		}
		if r := e.do("DELETE", "/v1/upstreams/"+up, f.token, nil, "If-Match", etag("/v1/upstreams/"+up)); r.Status != 204 {
			t.Fatalf("DELETE with the current ETag: %d %s", r.Status, r.Body)
		}
	})
}

// TestIfMatchHolds covers the If-Match list syntax.
func TestIfMatchHolds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, header string
		want         bool
	}{
		{"same", `"abc"`, true},
		{"star", `*`, true},
		{"in a list", `"x", "abc"`, true},
		{"other", `"abd"`, false},
		{"weak", `W/"abc"`, false},
		{"unquoted", `abc`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ifMatchHolds(tc.header, `"abc"`); got != tc.want {
				t.Errorf("ifMatchHolds(%s) = %v, want %v", tc.header, got, tc.want)
			}
		})
	}
}

// TestIfMatchUnderTheLock: a change committed between a PATCH's If-Match
// check and its write (simulated by a read that answers the object as it
// was before) is found under the write's row lock: 412, nothing written.
func TestIfMatchUnderTheLock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	f := e.fixture("acme")
	a := &api{db: e.db, secret: testSecret, cat: catalog.New(e.db, testSecret, true),
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx := context.Background()
	before, err := a.cat.GetUpstream(ctx, f.tenantID, f.upstream)
	if err != nil {
		t.Fatal(err)
	}
	e.must(200, "PATCH", "/v1/upstreams/"+f.upstream, f.token, map[string]any{"name": "changed meanwhile"})
	stale := func(context.Context, string, string) (catalog.Upstream, error) { return before, nil }
	mux := http.NewServeMux()
	mux.Handle("PATCH /v1/upstreams/{id}", a.wrap(route{method: "PATCH", path: "/v1/upstreams/{id}", auth: authTenant,
		endpoint: update(stale, a.cat.UpdateUpstream, catalog.Upstream.Input, upstreamRequestOf, UpstreamRequest.input, upstreamOf)}))
	etag, err := etagOfValue(upstreamOf(before))
	if err != nil {
		t.Fatal(err)
	}
	counts := e.counts()
	for _, tc := range []struct {
		name, ifMatch string
		want          int
	}{
		{"the ETag read before the change", etag, 412},
		{"star takes the object as it is", "*", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("PATCH", "/v1/upstreams/"+f.upstream, strings.NewReader(`{"algorithm":"random"}`))
			req.Header.Set("Authorization", "Bearer "+f.token)
			req.Header.Set("If-Match", tc.ifMatch)
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("%d %s, want %d", rec.Code, rec.Body, tc.want)
			}
			if tc.want == 412 && !equalCounts(counts, e.counts()) {
				t.Fatal("a refused PATCH wrote")
			}
		})
	}
}
