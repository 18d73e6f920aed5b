package publish_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/publish"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/storetest"
	"github.com/tollgate/tollgate/services/tenancy"
)

var secret = []byte("publish-test-secret")

// harness is a database, a Redis key prefix and a catalog with one tenant.
type harness struct {
	t    *testing.T
	db   *pgxpool.Pool
	rdb  *redis.Client
	keys proxycfg.Keys
	cat  *catalog.Service
	who  audit.Actor
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	db := storetest.NewPool(t)
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	var b [6]byte
	_, _ = rand.Read(b[:])
	keys := proxycfg.Keys{Prefix: "test:" + hex.EncodeToString(b[:]) + ":"}
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, keys.Prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		rdb.Close()
	})
	tn, _, err := tenancy.Create(context.Background(), db, secret, "Acme", "acme")
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, db: db, rdb: rdb, keys: keys, cat: catalog.New(db, secret, true),
		who: audit.Actor{TenantID: tn.ID, Name: "test"}}
}

// start runs a publisher until the test ends.
func (h *harness) start() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := publish.New(publish.Options{DB: h.db, Redis: h.rdb, Keys: h.keys, PollInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("Run: %v", err)
		}
	})
}

// eventually polls cond until it holds or a generous deadline passes.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dbGeneration is the harness tenant's config generation in the database.
func (h *harness) dbGeneration() int64 {
	return h.tenantGeneration(h.who.TenantID)
}

func (h *harness) tenantGeneration(tenantID string) int64 {
	var g int64
	if err := h.db.QueryRow(context.Background(), `SELECT coalesce((SELECT generation FROM config_changes WHERE tenant_id = $1), 0)`,
		tenantID).Scan(&g); err != nil {
		h.t.Fatal(err)
	}
	return g
}

// index reads the config index: the sequence, the digest version and the
// tenants' entries.
func (h *harness) index() (seq int64, digest int, entries map[string]proxycfg.IndexEntry) {
	h.t.Helper()
	all, err := h.rdb.HGetAll(context.Background(), h.keys.ConfigIndex()).Result()
	if err != nil {
		h.t.Fatal(err)
	}
	entries = map[string]proxycfg.IndexEntry{}
	for k, v := range all {
		switch k {
		case proxycfg.IndexSeqField:
			seq, _ = strconv.ParseInt(v, 10, 64)
		case proxycfg.IndexDigestField:
			digest, _ = strconv.Atoi(v)
		default:
			e, err := proxycfg.ParseIndexEntry(v)
			if err != nil {
				h.t.Fatal(err)
			}
			entries[k] = e
		}
	}
	return seq, digest, entries
}

// snapshot waits until the harness tenant's published shard reaches
// generation min, and returns the whole config in Redis (the index and
// every shard it names) as one snapshot at that generation.
func (h *harness) snapshot(min int64) *proxycfg.Snapshot {
	h.t.Helper()
	ctx := context.Background()
	var snap proxycfg.Snapshot
	h.eventually("shard generation "+strconv.FormatInt(min, 10), func() bool {
		_, digest, entries := h.index()
		own, ok := entries[h.who.TenantID]
		if !ok || own.Generation < min {
			return false
		}
		snap = proxycfg.Snapshot{Schema: proxycfg.CapabilityVersion, Generation: own.Generation, DigestVersion: digest}
		for id, e := range entries {
			raw, err := h.rdb.Get(ctx, h.keys.ConfigShard(id, e.Generation)).Bytes()
			if err != nil {
				h.t.Fatalf("shard %s/%d missing: %v", id, e.Generation, err)
			}
			if proxycfg.ShardSum(raw) != e.Sum {
				h.t.Fatalf("shard %s/%d does not match its entry", id, e.Generation)
			}
			sh, err := proxycfg.DecodeShard(raw, proxycfg.CapabilityVersion)
			if err != nil {
				h.t.Fatal(err)
			}
			if sh.Capability != e.Capability {
				h.t.Fatalf("entry capability %d, shard %d", e.Capability, sh.Capability)
			}
			snap.Tenants = append(snap.Tenants, sh.Tenant)
			if sh.CompiledAt.After(snap.CompiledAt) {
				snap.CompiledAt = sh.CompiledAt
			}
		}
		sort.Slice(snap.Tenants, func(i, j int) bool { return snap.Tenants[i].Slug < snap.Tenants[j].Slug })
		return true
	})
	if err := snap.Validate(); err != nil {
		h.t.Fatalf("published config invalid: %v", err)
	}
	return &snap
}

func ptr[T any](v T) *T { return &v }

// populate creates an upstream, two APIs and a plan.
func (h *harness) populate() (catalog.Upstream, catalog.API, catalog.API, catalog.Plan) {
	h.t.Helper()
	ctx := context.Background()
	up, err := h.cat.CreateUpstream(ctx, h.who, catalog.UpstreamInput{Name: "pool", Algorithm: "weighted",
		Targets: []catalog.Target{{URL: "http://127.0.0.1:9001", Weight: ptr(3)}, {URL: "http://127.0.0.1:9002"}}})
	if err != nil {
		h.t.Fatal(err)
	}
	a1, err := h.cat.CreateAPI(ctx, h.who, catalog.APIInput{Name: "A", Slug: "a", BasePath: "/a", UpstreamID: up.ID})
	if err != nil {
		h.t.Fatal(err)
	}
	a2, err := h.cat.CreateAPI(ctx, h.who, catalog.APIInput{Name: "B", Slug: "b", BasePath: "/b", UpstreamID: up.ID,
		Auth: "none", StripBasePath: ptr(false)})
	if err != nil {
		h.t.Fatal(err)
	}
	plan, err := h.cat.CreatePlan(ctx, h.who, catalog.PlanInput{Name: "Gold",
		RateLimit: catalog.RateLimit{Requests: 5, PerSeconds: 1}, Quota: catalog.Quota{Requests: 100, Period: "day"},
		APIIDs: []string{a2.ID, a1.ID}})
	if err != nil {
		h.t.Fatal(err)
	}
	return up, a1, a2, plan
}

func TestSnapshotContent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start()
	first := h.snapshot(1)
	up, a1, a2, plan := h.populate()
	gen := h.dbGeneration()
	snap := h.snapshot(gen)
	if snap.Generation <= first.Generation || snap.Schema != proxycfg.SchemaVersion {
		t.Fatalf("generation %d after %d, schema %d", snap.Generation, first.Generation, snap.Schema)
	}
	if len(snap.Tenants) != 1 || snap.Tenants[0].Slug != "acme" || snap.Tenants[0].ID != h.who.TenantID {
		t.Fatalf("tenants %+v", snap.Tenants)
	}
	tn := snap.Tenants[0]
	wantUp := proxycfg.Upstream{ID: up.ID, Name: "pool", Algorithm: "weighted",
		Targets: []proxycfg.Target{{URL: "http://127.0.0.1:9001", Weight: 3}, {URL: "http://127.0.0.1:9002", Weight: 1}}}
	if len(tn.Upstreams) != 1 || !equalJSON(tn.Upstreams[0], wantUp) {
		t.Fatalf("upstreams %+v", tn.Upstreams)
	}
	wantAPIs := []proxycfg.API{
		{ID: a1.ID, Slug: "a", Name: "A", BasePath: "/a", UpstreamID: up.ID, Auth: "key", StripBasePath: true},
		{ID: a2.ID, Slug: "b", Name: "B", BasePath: "/b", UpstreamID: up.ID, Auth: "none", StripBasePath: false},
	}
	if !equalJSON(tn.APIs, wantAPIs) {
		t.Fatalf("apis %+v", tn.APIs)
	}
	wantPlans := []proxycfg.Plan{{ID: plan.ID, Name: "Gold", RateLimit: proxycfg.RateLimit{Requests: 5, PerSeconds: 1},
		Quota: proxycfg.Quota{Requests: 100, Period: "day"}, APIIDs: []string{a1.ID, a2.ID}}}
	if !equalJSON(tn.Plans, wantPlans) {
		t.Fatalf("plans %+v", tn.Plans)
	}
	// A further change publishes a higher generation; the old shard
	// expires (or is gone at once: no worker heartbeats to wait for).
	if _, err := h.cat.UpdateUpstream(context.Background(), h.who, up.ID, func(in *catalog.UpstreamInput) error {
		in.Targets = in.Targets[:1]
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	next := h.snapshot(h.dbGeneration())
	if next.Generation <= snap.Generation || len(next.Tenants[0].Upstreams[0].Targets) != 1 {
		t.Fatalf("after update: %+v", next)
	}
	h.eventually("old shard expiry", func() bool {
		ttl, err := h.rdb.TTL(context.Background(), h.keys.ConfigShard(h.who.TenantID, snap.Generation)).Result()
		return err == nil && (ttl > 0 || ttl == -2)
	})
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestRestartCatchUp(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// Changes are committed while no publisher runs ...
	h.populate()
	consumer, err := h.cat.CreateConsumer(context.Background(), h.who, catalog.ConsumerInput{Name: "c", Email: "c@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	plans, _, err := h.cat.ListPlans(context.Background(), h.who.TenantID, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	_, secretKey, err := h.cat.CreateKey(context.Background(), h.who, catalog.KeyInput{ConsumerID: consumer.ID, PlanID: plans[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := h.rdb.Exists(context.Background(), h.keys.ConfigIndex()).Result(); n != 0 {
		t.Fatal("something published without a publisher")
	}
	// ... and a publisher started later publishes them.
	h.start()
	snap := h.snapshot(h.dbGeneration())
	if len(snap.Tenants[0].APIs) != 2 {
		t.Fatalf("catch-up snapshot %+v", snap)
	}
	h.eventually("key record", func() bool {
		return h.rdb.Exists(context.Background(), h.keys.Key(proxycfg.Digest(secret, secretKey))).Val() == 1
	})
	var published int64
	seq, _, _ := h.index()
	if err := h.db.QueryRow(context.Background(), `SELECT published_generation FROM config_state`).Scan(&published); err != nil || published != seq {
		t.Fatalf("published index sequence %d, want %d (%v)", published, seq, err)
	}
}

func TestKeyRecords(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	_, _, _, plan := h.populate()
	consumer, err := h.cat.CreateConsumer(ctx, h.who, catalog.ConsumerInput{Name: "c", Email: "c@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	sub := h.rdb.Subscribe(ctx, h.keys.KeyChannel())
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // subscription confirmation
		t.Fatal(err)
	}
	h.start()

	key, secretKey, err := h.cat.CreateKey(ctx, h.who, catalog.KeyInput{ConsumerID: consumer.ID, PlanID: plan.ID})
	if err != nil {
		t.Fatal(err)
	}
	digest := proxycfg.Digest(secret, secretKey)
	record := func() (proxycfg.KeyRecord, bool) {
		raw, err := h.rdb.Get(ctx, h.keys.Key(digest)).Bytes()
		if errors.Is(err, redis.Nil) {
			return proxycfg.KeyRecord{}, false
		}
		if err != nil {
			t.Fatal(err)
		}
		var rec proxycfg.KeyRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			t.Fatal(err)
		}
		return rec, true
	}
	h.eventually("active key record", func() bool { _, ok := record(); return ok })
	rec, _ := record()
	want := proxycfg.KeyRecord{ID: key.ID, TenantID: h.who.TenantID, ConsumerID: consumer.ID, PlanID: plan.ID, Status: proxycfg.KeyActive}
	if rec != want {
		t.Fatalf("record %+v, want %+v", rec, want)
	}

	if err := h.cat.RevokeKey(ctx, h.who, key.ID); err != nil {
		t.Fatal(err)
	}
	h.eventually("revoked key record", func() bool { r, ok := record(); return !ok || r.Status == proxycfg.KeyRevoked })

	// The channel carried the digest for the create and for the revoke.
	got := 0
	deadline := time.After(15 * time.Second)
	for got < 2 {
		select {
		case msg := <-sub.Channel():
			if msg.Payload != digest {
				t.Fatalf("key event %q, want %q", msg.Payload, digest)
			}
			got++
		case <-deadline:
			t.Fatalf("got %d key events, want 2", got)
		}
	}
	h.eventually("outbox drained", func() bool {
		var pending int
		if err := h.db.QueryRow(ctx, `SELECT count(*) FROM key_outbox WHERE published_at IS NULL`).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		return pending == 0
	})
}

func TestRedisResetRepublishes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	_, _, _, plan := h.populate()
	consumer, err := h.cat.CreateConsumer(ctx, h.who, catalog.ConsumerInput{Name: "c", Email: "c@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	_, secretKey, err := h.cat.CreateKey(ctx, h.who, catalog.KeyInput{ConsumerID: consumer.ID, PlanID: plan.ID})
	if err != nil {
		t.Fatal(err)
	}
	h.start()
	gen := h.dbGeneration()
	h.snapshot(gen)
	keyName := h.keys.Key(proxycfg.Digest(secret, secretKey))
	h.eventually("key record", func() bool { return h.rdb.Exists(ctx, keyName).Val() == 1 })
	// Redis loses everything (flushed, failed over to an empty replica).
	h.rdb.Del(ctx, h.keys.ConfigIndex(), h.keys.ConfigLog(), h.keys.ConfigShard(h.who.TenantID, gen), keyName)
	h.snapshot(gen)
	h.eventually("key record rewritten", func() bool { return h.rdb.Exists(ctx, keyName).Val() == 1 })
}

func TestOnePublisherLeads(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// Two replicas: both run, one holds the lock, publishing still works.
	h.start()
	h.start()
	h.snapshot(h.dbGeneration())
	h.populate()
	h.snapshot(h.dbGeneration())
}
