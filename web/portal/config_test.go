package portal_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/services/outbox"
	"github.com/tollgate/tollgate/services/publish"
	"github.com/tollgate/tollgate/services/storetest"
)

// gateway makes an upstream balanced by algorithm and an API forwarding to
// it, and returns the API's id.
func (b *browser) gateway(algorithm string) string {
	t := b.e.t
	t.Helper()
	b.get("/upstreams/new")
	want(t, b.post("/upstreams", url.Values{"name": {"backend"}, "algorithm": {algorithm}, "targets": {"http://127.0.0.1:9"}}),
		http.StatusSeeOther, "create upstream")
	m := regexp.MustCompile(`/upstreams/([0-9a-f-]{36})`).FindStringSubmatch(b.get("/upstreams").body)
	if m == nil {
		t.Fatal("no upstream in the list")
	}
	b.get("/apis/new")
	return created(t, b.post("/apis", url.Values{"name": {"Orders"}, "slug": {"orders"}, "base_path": {"/orders"},
		"upstream_id": {m[1]}, "auth": {"key"}, "strip_base_path": {"on"}, "timeout_ms": {"0"}}), "create api")
}

// beat writes a proxy worker's config heartbeat as the workers do
// (proxycfg.ConfigWorkerBeat).
func beat(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys, id string, capability int) {
	t.Helper()
	raw, err := json.Marshal(proxycfg.ConfigWorkerBeat{Capability: capability, Seq: 1, At: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := rdb.HSet(ctx, keys.ConfigWorkers(), id, strconv.FormatInt(time.Now().UnixMilli(), 10)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, keys.ConfigWorkerBeat(id), raw, proxycfg.ConfigBeatTTL).Err(); err != nil {
		t.Fatal(err)
	}
}

var tagRE = regexp.MustCompile(`<[^>]*>`)

// element is the text of the element with id on the page ("" if none).
func element(body, id string) string {
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		return ""
	}
	rest := body[i:]
	if j := strings.Index(rest, "</div>"); j >= 0 {
		rest = rest[:j]
	}
	text := html.UnescapeString(tagRE.ReplaceAllString(rest[strings.Index(rest, ">")+1:], " "))
	return strings.Join(strings.Fields(text), " ")
}

// TestConfigRefusalShown: a tenant whose change the publisher refuses (its
// compiled config over its config_bytes limit) sees on its pages which
// change was refused, why, and the generation that keeps serving, and how
// many workers are too old for its config; another tenant's pages show
// none of it; once a good change is published the banner goes.
func TestConfigRefusalShown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, keys := storetest.NewRedis(t)
	e := newEnv(t, envOpts{rdb: rdb, keys: keys})
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	pub := publish.New(publish.Options{DB: e.db, Redis: rdb, Keys: keys, PollInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	go func() { done <- pub.Run(pctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("publisher: %v", err)
		}
	})

	tenantID := func(slug string) string {
		t.Helper()
		var id string
		if err := e.db.QueryRow(ctx, `SELECT id FROM tenants WHERE slug = $1`, slug).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	status := func(id string) outbox.ConfigStatus {
		t.Helper()
		st, err := outbox.ReadStatus(ctx, e.db, nil, keys, id)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	until := func(what, id string, cond func(outbox.ConfigStatus) bool) outbox.ConfigStatus {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			st := status(id)
			if cond(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: status %+v", what, st)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	published := func(st outbox.ConfigStatus) bool {
		return st.Generation > 0 && st.PublishedGeneration == st.Generation && st.Status == outbox.StatusOK
	}

	// Two tenants with a published config each; the first's needs more
	// than the base capability (least_conn balancing).
	a := e.signup("refused")
	apiID := a.gateway("least_conn")
	b := e.signup("steady")
	b.gateway("round_robin")
	aID, bID := tenantID("refused"), tenantID("steady")
	good := until("the first tenant published", aID, published)
	stB := until("the second tenant published", bID, published)
	if good.Capability <= stB.Capability {
		t.Fatalf("capabilities %d and %d: the test needs the first tenant's higher", good.Capability, stB.Capability)
	}
	p := a.get("/dashboard")
	want(t, p, http.StatusOK, "dashboard")
	if got := element(p.body, "config-live"); !strings.Contains(got, "generation "+strconv.FormatInt(good.PublishedGeneration, 10)+" is live") {
		t.Errorf("dashboard config line %q, want generation %d live", got, good.PublishedGeneration)
	}
	if strings.Contains(p.body, `id="config-error"`) || strings.Contains(p.body, `id="config-workers-old"`) {
		t.Error("a config that is fine shows a warning")
	}

	// The operator lowers the tenant's config_bytes limit under what it
	// uses; its next change grows the config and is refused.
	if err := limits.SetOverride(ctx, e.db, aID, limits.Override{limits.ConfigBytes: 64}); err != nil {
		t.Fatal(err)
	}
	a.get("/apis/new")
	upID := ""
	if err := e.db.QueryRow(ctx, `SELECT id FROM upstreams WHERE tenant_id = $1`, aID).Scan(&upID); err != nil {
		t.Fatal(err)
	}
	created(t, a.post("/apis", url.Values{"name": {"Billing"}, "slug": {"billing"}, "base_path": {"/billing"},
		"upstream_id": {upID}, "auth": {"key"}, "strip_base_path": {"on"}, "timeout_ms": {"0"}}), "create a second api")
	bad := until("the change refused", aID, func(st outbox.ConfigStatus) bool { return st.Status == outbox.StatusError })
	if bad.PublishedGeneration != good.PublishedGeneration || bad.ErrorGeneration <= good.PublishedGeneration {
		t.Fatalf("refused status %+v after %+v", bad, good)
	}

	// Two workers: one current, one too old for the first tenant's config
	// (but not for the second's).
	beat(t, rdb, keys, "w-new", proxycfg.CapabilityVersion)
	beat(t, rdb, keys, "w-old", good.Capability-1)

	refused, live := strconv.FormatInt(bad.ErrorGeneration, 10), strconv.FormatInt(good.PublishedGeneration, 10)
	for _, path := range []string{"/dashboard", "/apis", "/apis/" + apiID, "/upstreams", "/plans"} {
		p := a.get(path)
		want(t, p, http.StatusOK, path)
		banner := element(p.body, "config-error")
		for _, w := range []string{"Config generation " + refused + " was refused", "over the limit of 64 bytes (config_bytes)",
			"keeps serving generation " + live} {
			if !strings.Contains(banner, w) {
				t.Errorf("%s: config banner %q lacks %q", path, banner, w)
			}
		}
		if got := element(p.body, "config-workers-old"); !strings.Contains(got, "1 of 2 gateway workers is too old") {
			t.Errorf("%s: workers notice %q", path, got)
		}
		if strings.Contains(p.body, `id="config-live"`) {
			t.Errorf("%s: the quiet config line shows next to the refusal", path)
		}
	}

	// The other tenant sees nothing of it: its config is fine, and no
	// worker is too old for it.
	for _, path := range []string{"/dashboard", "/apis"} {
		p := b.get(path)
		want(t, p, http.StatusOK, path)
		if strings.Contains(p.body, `id="config-error"`) || strings.Contains(p.body, `id="config-workers-old"`) ||
			strings.Contains(p.body, "config_bytes)") {
			t.Errorf("%s of the other tenant shows the first tenant's refusal", path)
		}
	}
	if got := element(b.get("/dashboard").body, "config-live"); !strings.Contains(got, "generation "+strconv.FormatInt(stB.PublishedGeneration, 10)+" is live") {
		t.Errorf("other tenant's config line %q", got)
	}

	// The limit goes back up and the tenant saves again: the change is
	// published and the banner goes.
	if err := limits.SetOverride(ctx, e.db, aID, nil); err != nil {
		t.Fatal(err)
	}
	a.get("/apis/" + apiID)
	want(t, a.post("/apis/"+apiID, url.Values{"name": {"Orders v2"}, "slug": {"orders"}, "base_path": {"/orders"},
		"upstream_id": {upID}, "auth": {"key"}, "strip_base_path": {"on"}, "timeout_ms": {"0"}}), http.StatusSeeOther, "save the api")
	fixed := until("the next change published", aID, published)
	p = a.get("/dashboard")
	if strings.Contains(p.body, `id="config-error"`) {
		t.Error("the refusal still shows after a good change was published")
	}
	if got := element(p.body, "config-live"); !strings.Contains(got, "generation "+strconv.FormatInt(fixed.PublishedGeneration, 10)+" is live") {
		t.Errorf("config line %q after the fix", got)
	}
}
