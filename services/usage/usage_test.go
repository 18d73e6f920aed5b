package usage

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/storetest"
)

const (
	tenantA   = "00000000-0000-4000-8000-00000000000a"
	tenantB   = "00000000-0000-4000-8000-00000000000b"
	apiID     = "00000000-0000-4000-8000-0000000000a1"
	consumer1 = "00000000-0000-4000-8000-0000000000c1"
	consumer2 = "00000000-0000-4000-8000-0000000000c2"
	key1      = "00000000-0000-4000-8000-0000000000e1"
	key2      = "00000000-0000-4000-8000-0000000000e2"
	plan1     = "00000000-0000-4000-8000-0000000000f1"
)

func row(minute time.Time, tenant, consumer, key string, class int, n int64, latencyMS float64) proxycfg.UsageRow {
	r := proxycfg.UsageRow{Minute: minute.Unix(), TenantID: tenant, APIID: apiID, ConsumerID: consumer, KeyID: key,
		PlanID: plan1, StatusClass: class, Requests: n, BytesIn: 10 * n, BytesOut: 100 * n,
		LatencyMicros: int64(latencyMS*1000) * n}
	r.Latency[proxycfg.LatencyBucket(latencyMS)] = n
	return r
}

func xadd(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys, rows ...proxycfg.UsageRow) string {
	t.Helper()
	raw, err := json.Marshal(rows)
	if err != nil {
		t.Fatal(err)
	}
	id, err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: keys.UsageStream(),
		Values: []any{proxycfg.UsageField, string(raw)}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newAggregator(t *testing.T, db *pgxpool.Pool, rdb redis.UniversalClient, keys proxycfg.Keys, consumer string) *Aggregator {
	t.Helper()
	a, err := NewAggregator(AggregatorOptions{DB: db, Redis: rdb, Keys: keys, Consumer: consumer,
		Block: 20 * time.Millisecond, ClaimIdle: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.ensureGroup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return a
}

func totalRequests(t *testing.T, db *pgxpool.Pool, tenant string) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(context.Background(), `SELECT coalesce(sum(requests), 0) FROM usage_minutes WHERE tenant_id = $1`,
		tenant).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSeriesAndTopConsumers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	rdb, keys := storetest.NewRedis(t)
	if _, err := db.Exec(ctx, `INSERT INTO tenants (id, name, slug) VALUES ($1, 'A', 'a-usage'), ($2, 'B', 'b-usage')`,
		tenantA, tenantB); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO consumers (id, tenant_id, name, email) VALUES ($1, $2, 'Ann', 'ann@example.com')`,
		consumer1, tenantA); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	// Two entries touch the same rollup row (10:00, consumer1, 2xx): they add up.
	xadd(t, rdb, keys,
		row(base, tenantA, consumer1, key1, 2, 8, 3),
		row(base, tenantA, consumer1, key1, 4, 2, 1),
		row(base.Add(time.Minute), tenantA, consumer2, key2, 5, 5, 400),
	)
	xadd(t, rdb, keys,
		row(base, tenantA, consumer1, key1, 2, 2, 3),
		row(base.Add(61*time.Minute), tenantA, consumer2, key2, 2, 4, 20),
		row(base, tenantB, consumer1, key1, 2, 1000, 1), // another tenant: never visible to A
	)
	a := newAggregator(t, db, rdb, keys, "c1")
	if n, err := a.Step(ctx); err != nil || n != 2 {
		t.Fatalf("step: %d, %v", n, err)
	}
	if n := rdb.XLen(ctx, keys.UsageStream()).Val(); n != 0 {
		t.Fatalf("stream still holds %d entries after ack", n)
	}

	tests := []struct {
		name string
		q    Query
		want []Point // only Start, Requests, Status2xx, Status4xx, Status5xx, BytesIn compared
	}{
		{name: "minutes", q: Query{From: base, To: base.Add(3 * time.Minute), Bucket: Minute}, want: []Point{
			{Start: base, Requests: 12, Status2xx: 10, Status4xx: 2, BytesIn: 120},
			{Start: base.Add(time.Minute), Requests: 5, Status5xx: 5, BytesIn: 50},
			{Start: base.Add(2 * time.Minute)},
		}},
		{name: "hours", q: Query{From: base.Add(5 * time.Minute), To: base.Add(90 * time.Minute), Bucket: Hour}, want: []Point{
			{Start: base, Requests: 17, Status2xx: 10, Status4xx: 2, Status5xx: 5, BytesIn: 170},
			{Start: base.Add(time.Hour), Requests: 4, Status2xx: 4, BytesIn: 40},
		}},
		{name: "day by consumer", q: Query{From: base, To: base.Add(time.Hour), Bucket: Day, ConsumerID: consumer2}, want: []Point{
			{Start: base.Truncate(Day), Requests: 9, Status2xx: 4, Status5xx: 5, BytesIn: 90},
		}},
		{name: "status class filter", q: Query{From: base, To: base.Add(2 * time.Hour), Bucket: Day, StatusClass: 4}, want: []Point{
			{Start: base.Truncate(Day), Requests: 2, Status4xx: 2, BytesIn: 20},
		}},
		{name: "key and plan filter", q: Query{From: base, To: base.Add(time.Minute), KeyID: key1, PlanID: plan1}, want: []Point{
			{Start: base, Requests: 12, Status2xx: 10, Status4xx: 2, BytesIn: 120},
		}},
		{name: "api filter excludes", q: Query{From: base, To: base.Add(time.Minute), APIID: key1}, want: []Point{{Start: base}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.TenantID = tenantA
			got, err := Series(ctx, db, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d points %+v, want %d", len(got), got, len(tc.want))
			}
			for i, w := range tc.want {
				g := got[i]
				if !g.Start.Equal(w.Start) || g.Requests != w.Requests || g.Status2xx != w.Status2xx ||
					g.Status4xx != w.Status4xx || g.Status5xx != w.Status5xx || g.BytesIn != w.BytesIn {
					t.Errorf("point %d: got %+v, want %+v", i, g, w)
				}
			}
		})
	}

	// Latency: 8+2 requests of 3 ms and 2 of 1 ms in the first minute.
	pts, err := Series(ctx, db, Query{TenantID: tenantA, From: base, To: base.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if p := pts[0]; p.LatencyAvgMS < 2.6 || p.LatencyAvgMS > 2.7 || p.LatencyP50MS <= 2 || p.LatencyP50MS > 5 ||
		p.LatencyP99MS <= 2 || p.LatencyP99MS > 5 {
		t.Fatalf("latency of %+v", p)
	}

	top, err := TopConsumers(ctx, db, Query{TenantID: tenantA, From: base, To: base.Add(2 * time.Hour)}, 5)
	if err != nil {
		t.Fatal(err)
	}
	want := []ConsumerTotal{
		{ConsumerID: consumer1, Name: "Ann", Requests: 12, Errors: 2},
		{ConsumerID: consumer2, Name: "", Requests: 9, Errors: 5},
	}
	if len(top) != len(want) || top[0] != want[0] || top[1] != want[1] {
		t.Fatalf("top consumers %+v, want %+v", top, want)
	}
	if top, err := TopConsumers(ctx, db, Query{TenantID: tenantA, From: base, To: base.Add(time.Hour)}, 1); err != nil ||
		len(top) != 1 || top[0].ConsumerID != consumer1 {
		t.Fatalf("top 1: %+v, %v", top, err)
	}
}

func TestQueryValidation(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tests := []struct {
		name string
		q    Query
	}{
		{name: "no range", q: Query{}},
		{name: "to before from", q: Query{From: now, To: now.Add(-time.Hour)}},
		{name: "odd bucket", q: Query{From: now, To: now.Add(time.Hour), Bucket: 7 * time.Minute}},
		{name: "sub minute", q: Query{From: now, To: now.Add(time.Hour), Bucket: time.Second}},
		{name: "bad class", q: Query{From: now, To: now.Add(time.Hour), StatusClass: 9}},
		{name: "too many points", q: Query{From: now.Add(-365 * Day), To: now, Bucket: Minute}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.q.normalize(); err == nil {
				t.Fatalf("%+v accepted", tc.q)
			}
		})
	}
	q := Query{From: time.Date(2026, 1, 1, 10, 30, 0, 0, time.UTC), To: time.Date(2026, 1, 1, 12, 0, 1, 0, time.UTC), Bucket: Hour}
	if err := q.normalize(); err != nil || q.From.Hour() != 10 || q.From.Minute() != 0 || q.To.Hour() != 13 {
		t.Fatalf("aligned to %v..%v, %v", q.From, q.To, err)
	}
}

func TestExactlyOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	storetest.EachRedis(t, func(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys) {
		db := storetest.NewPool(t)
		base := time.Now().UTC().Truncate(time.Minute)
		a := newAggregator(t, db, rdb, keys, "live")

		// An aggregator that dies after reading, before committing: its entries
		// stay pending and are claimed by the live one after ClaimIdle.
		for range 3 {
			xadd(t, rdb, keys, row(base, tenantA, consumer1, key1, 2, 7, 2))
		}
		if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: DefaultGroup, Consumer: "dead",
			Streams: []string{keys.UsageStream(), ">"}, Count: 10, Block: -1}).Err(); err != nil {
			t.Fatal(err)
		}
		if n, err := a.Step(ctx); err != nil || n != 0 {
			t.Fatalf("step saw %d entries of the dead consumer, %v", n, err)
		}
		time.Sleep(60 * time.Millisecond) // ClaimIdle is 50 ms
		if err := a.claim(ctx); err != nil {
			t.Fatal(err)
		}
		if got := totalRequests(t, db, tenantA); got != 21 {
			t.Fatalf("after claim: %d requests, want 21", got)
		}

		// An aggregator that dies after committing, before acknowledging: the
		// redelivered entries add nothing.
		xadd(t, rdb, keys, row(base, tenantA, consumer1, key1, 2, 5, 2))
		res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: DefaultGroup, Consumer: "live",
			Streams: []string{keys.UsageStream(), ">"}, Count: 10, Block: -1}).Result()
		if err != nil {
			t.Fatal(err)
		}
		if err := a.commit(ctx, res[0].Messages); err != nil {
			t.Fatal(err)
		}
		if err := a.commit(ctx, res[0].Messages); err != nil {
			t.Fatal(err)
		}
		if got := totalRequests(t, db, tenantA); got != 26 {
			t.Fatalf("after redelivery: %d requests, want 26", got)
		}

		// A worker whose XADD answer was lost retries with the same batch id:
		// both copies land, one counts.
		raw, _ := json.Marshal([]proxycfg.UsageRow{row(base, tenantA, consumer1, key1, 2, 100, 2)})
		for range 2 {
			if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.UsageStream(),
				Values: []any{proxycfg.UsageBatchField, "w1-7", proxycfg.UsageField, string(raw)}}).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.Step(ctx); err != nil {
			t.Fatal(err)
		}
		if got := totalRequests(t, db, tenantA); got != 126 {
			t.Fatalf("after a duplicated batch: %d requests, want 126", got)
		}

		// Malformed entries do not block the group.
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.UsageStream(), Values: []any{proxycfg.UsageField, "{"}}).Err(); err != nil {
			t.Fatal(err)
		}
		xadd(t, rdb, keys, row(base, tenantA, consumer1, key1, 2, 1, 2))
		if _, err := a.Step(ctx); err != nil {
			t.Fatal(err)
		}
		if got := totalRequests(t, db, tenantA); got != 127 {
			t.Fatalf("after malformed entry: %d requests, want 127", got)
		}
		if n := rdb.XLen(ctx, keys.UsageStream()).Val(); n != 0 {
			t.Fatalf("stream holds %d entries", n)
		}
		// Pruning keeps recent entry ids (redeliveries are still possible).
		if err := a.prune(ctx); err != nil {
			t.Fatal(err)
		}
		var kept int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM usage_entries`).Scan(&kept); err != nil || kept == 0 {
			t.Fatalf("usage_entries after prune: %d, %v", kept, err)
		}
	})
}

func TestRunStopsAndResumes(t *testing.T) {
	t.Parallel()
	storetest.EachRedis(t, func(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys) {
		db := storetest.NewPool(t)
		base := time.Now().UTC().Truncate(time.Minute)
		run := func() (stop func()) {
			a := newAggregator(t, db, rdb, keys, "")
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx) }()
			return func() {
				cancel()
				if err := <-done; err != context.Canceled {
					t.Errorf("run returned %v", err)
				}
			}
		}
		stop := run()
		for range 10 {
			xadd(t, rdb, keys, row(base, tenantA, consumer1, key1, 2, 1, 2))
		}
		stop()
		for range 10 {
			xadd(t, rdb, keys, row(base, tenantA, consumer1, key1, 2, 1, 2))
		}
		stop = run()
		defer stop()
		deadline := time.Now().Add(10 * time.Second)
		for totalRequests(t, db, tenantA) != 20 {
			if time.Now().After(deadline) {
				t.Fatalf("aggregated %d of 20", totalRequests(t, db, tenantA))
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	var h [proxycfg.LatencyBuckets]int64
	tests := []struct {
		name string
		hist func() []int64
		q    float64
		want float64
	}{
		{name: "empty", hist: func() []int64 { return h[:] }, q: 0.5, want: 0},
		{name: "one bucket middle", hist: func() []int64 { x := h; x[3] = 10; return x[:] }, q: 0.5, want: 7.5},
		{name: "first bucket", hist: func() []int64 { x := h; x[0] = 4; return x[:] }, q: 1, want: 1},
		{name: "open bucket", hist: func() []int64 { x := h; x[len(x)-1] = 1; return x[:] }, q: 0.99, want: 10000},
		{name: "split", hist: func() []int64 { x := h; x[0], x[9] = 99, 1; return x[:] }, q: 0.99, want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.hist(), tc.q); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
