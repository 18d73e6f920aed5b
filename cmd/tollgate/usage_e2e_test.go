package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/worker"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/storetest"
)

// proc is a control plane or worker run in-process that can be stopped
// gracefully (Stop waits until it has returned).
type proc struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (p *proc) Stop() {
	p.cancel()
	<-p.done
}

// TestUsageExactlyOnce sends requests through two workers while the
// control plane (with its usage aggregator) is stopped and restarted and one
// worker is replaced, then finds exactly as many requests in Postgres.
func TestUsageExactlyOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := store.Open(ctx, storetest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	keys := proxycfg.Keys{Prefix: "e2e-usage:" + randHex(6) + ":"}
	secret := []byte("e2e-usage-" + randHex(8))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Cleanup(func() {
		_ = clearPrefix(context.Background(), rdb, keys.Prefix)
		rdb.Close()
		db.Close()
	})
	p := &platform{t: t, operator: "op-" + randHex(8), client: &http.Client{Timeout: 10 * time.Second},
		workers: make([]string, 2)}

	startControl := func() *proc {
		ln := listen(t)
		p.control = "http://" + ln.Addr().String()
		cctx, cancel := context.WithCancel(context.Background())
		pr := &proc{cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(pr.done)
			_ = serveControl(cctx, controlDeps{DB: db, Redis: rdb, Keys: keys, Secret: secret, OperatorToken: p.operator, Limits: testLimits(),
				DigestKey:    testDigestKey(t, db, secret),
				AllowPrivate: true, Logger: log, PollInterval: 200 * time.Millisecond}, ln)
		}()
		return pr
	}
	startWorker := func(i int) *proc {
		w, err := worker.New(worker.Options{Redis: rdb, Keys: keys, Secret: secret, AllowPrivateUpstreams: true,
			Logger: log, PollInterval: 100 * time.Millisecond, MeterInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		traffic, admin := listen(t), listen(t)
		p.workers[i] = traffic.Addr().String()
		wctx, cancel := context.WithCancel(context.Background())
		pr := &proc{cancel: cancel, done: make(chan struct{})}
		go func() { defer close(pr.done); _ = w.Serve(wctx, traffic, admin) }()
		return pr
	}

	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(backend.Close)
	control := startControl()
	workers := []*proc{startWorker(0), startWorker(1)}
	t.Cleanup(func() {
		control.Stop()
		for _, w := range workers {
			w.Stop()
		}
	})
	acme := p.setupTenant("acme", []string{backend.URL}, 100000)
	host := "acme.localhost"
	sent, unauthorized := 0, 0
	// probe calls worker w; answers of a routed API are metered, whatever
	// their status (only "no such API" and "no config yet" are not).
	probe := func(w int) bool {
		a := p.call(w, host, "/echo/", acme.key)
		if a.status != 404 && !strings.Contains(a.body, "not loaded its configuration") {
			sent++
			if a.status >= 400 && a.status < 500 {
				unauthorized++
			}
		}
		return a.status == 200
	}
	p.eventually(5*time.Second, "both workers serve the key", func() bool { return probe(0) && probe(1) })
	burst := func(n int) {
		t.Helper()
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				k := acme.key
				if i%10 == 0 {
					k = "" // 401s are metered too: the API is known
				}
				a := p.call(i%2, host, "/echo/n", k)
				if (k == "" && a.status != 401) || (k != "" && a.status != 200) {
					t.Errorf("status %d for key %q", a.status, k)
				}
			})
		}
		wg.Wait()
		sent += n
		unauthorized += n / 10
	}

	burst(100)
	control.Stop() // the aggregator stops mid-stream; workers keep shipping
	burst(100)
	workers[1].Stop() // a graceful worker shutdown flushes its last batch
	workers[1] = startWorker(1)
	p.eventually(5*time.Second, "replacement worker serves", func() bool { return probe(1) })
	control = startControl()
	burst(100)

	total := func() int64 {
		var n int64
		if err := db.QueryRow(ctx, `SELECT coalesce(sum(requests), 0) FROM usage_minutes`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	p.eventually(20*time.Second, "all requests aggregated", func() bool { return total() >= int64(sent) })
	time.Sleep(500 * time.Millisecond) // several more flushes and reads: nothing may be added twice
	if got := total(); got != int64(sent) {
		t.Fatalf("usage_minutes holds %d requests, sent %d", got, sent)
	}
	t.Logf("%d requests sent through 2 workers across an aggregator restart and a worker replacement; %d in Postgres", sent, total())

	// The management API reports the same figures.
	var raw json.RawMessage
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	p.api("GET", "/v1/usage?bucket=day&from="+from, acme.token, nil, 200, &raw)
	if sumOf(t, raw, "requests") != float64(sent) || sumOf(t, raw, "status_4xx") != float64(unauthorized) {
		t.Fatalf("GET /v1/usage, want %d requests and %d 4xx: %s", sent, unauthorized, raw)
	}
}

// sumOf adds up a field over the points of a /v1/usage answer.
func sumOf(t *testing.T, raw json.RawMessage, field string) float64 {
	t.Helper()
	var doc struct {
		Points []map[string]any `json:"points"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, p := range doc.Points {
		v, _ := p[field].(float64)
		sum += v
	}
	return sum
}

// TestQuotaThroughTheStack issues a key on a plan with a small daily quota,
// spends it through both workers and reads it back from /v1/keys/{id}/quota.
func TestQuotaThroughTheStack(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(backend.Close)
	s := p.setupTenant("quota", []string{backend.URL}, 1000)
	var plan idOf
	p.api("POST", "/v1/plans", s.token, map[string]any{"name": "Tiny",
		"quota": map[string]any{"requests": 4, "period": "day"}, "api_ids": []string{s.api}}, 201, &plan)
	keyID, key := p.newKey(s.token, s.consumer, plan.ID)
	host := "quota.localhost"
	p.eventually(5*time.Second, "key works", func() bool { return p.call(0, host, "/echo/warm", key).status == 200 })
	ok, over := 1, 0
	for i := range 6 {
		a := p.call(i%2, host, "/echo/q", key)
		switch a.status {
		case 200:
			ok++
		case 429:
			over++
			var doc struct{ Type string }
			_ = json.Unmarshal([]byte(a.body), &doc)
			if doc.Type != "https://tollgate.dev/problems/quota-exceeded" || a.header.Get("Retry-After") == "" {
				t.Fatalf("429 %s (Retry-After %q)", a.body, a.header.Get("Retry-After"))
			}
		default:
			t.Fatalf("status %d: %s", a.status, a.body)
		}
	}
	if ok != 4 || over != 3 {
		t.Fatalf("%d allowed and %d over quota, want 4 and 3", ok, over)
	}
	var q struct {
		Limit, Used, Left int64
		Period            string
	}
	p.api("GET", "/v1/keys/"+keyID+"/quota", s.token, nil, 200, &q)
	if q.Limit != 4 || q.Used != 4 || q.Left != 0 || q.Period != "day" {
		t.Fatalf("quota %+v", q)
	}
}
