package outbox_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/outbox"
	"github.com/tollgate/tollgate/services/storetest"
)

// beat writes a worker's config heartbeat as the workers do (registry field
// and heartbeat key, proxycfg.ConfigWorkerBeat); raw, if set, replaces the
// heartbeat's JSON.
func beat(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys, id string, capability int, raw string) {
	t.Helper()
	ctx := context.Background()
	if raw == "" {
		b, err := json.Marshal(proxycfg.ConfigWorkerBeat{Capability: capability, Seq: 1, At: time.Now().UTC()})
		if err != nil {
			t.Fatal(err)
		}
		raw = string(b)
	}
	if err := rdb.HSet(ctx, keys.ConfigWorkers(), id, strconv.FormatInt(time.Now().UnixMilli(), 10)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, keys.ConfigWorkerBeat(id), raw, proxycfg.ConfigBeatTTL).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestReadStatus reads tenants' config status as the publisher records it
// (config_changes, config_shards) and the workers' heartbeats: a refused
// change shows until a later one is published, and the workers that speak
// less than the published shard needs are counted too old for it.
func TestReadStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	rdb, keys := storetest.NewRedis(t)
	const (
		fresh     = "00000000-0000-0000-0000-0000000000f1" // changed, never published
		published = "00000000-0000-0000-0000-0000000000f2" // published at 5, needs capability 8
		refused   = "00000000-0000-0000-0000-0000000000f3" // published at 5, change 6 refused
		stale     = "00000000-0000-0000-0000-0000000000f4" // change 4 refused, 5 published since
		base      = "00000000-0000-0000-0000-0000000000f5" // published at 2, needs capability 1
		neverGood = "00000000-0000-0000-0000-0000000000f6" // its first change refused
		unknown   = "00000000-0000-0000-0000-0000000000f7" // no row at all
	)
	for _, q := range []string{
		`INSERT INTO config_changes (tenant_id, generation, published_generation) VALUES
			('` + fresh + `', 1, 0), ('` + published + `', 5, 5), ('` + refused + `', 6, 6), ('` + stale + `', 5, 5),
			('` + base + `', 3, 2), ('` + neverGood + `', 1, 1)`,
		`INSERT INTO config_shards (tenant_id, generation, capability, published_at) VALUES
			('` + published + `', 5, 8, now()), ('` + base + `', 2, 1, now())`,
		`INSERT INTO config_shards (tenant_id, generation, capability, published_at, error, error_generation, error_at) VALUES
			('` + refused + `', 5, 8, now(), 'the compiled config is 300000 bytes, over the limit of 262144 bytes (config_bytes)', 6, now()),
			('` + stale + `', 5, 8, now(), 'an old refusal', 4, now())`,
		`INSERT INTO config_shards (tenant_id, error, error_generation, error_at) VALUES
			('` + neverGood + `', 'api "orders": invalid', 1, now())`,
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// Four live workers: two that speak less than capability 8, one that
	// speaks exactly 8, one current; one whose heartbeat cannot be read;
	// and one in the registry whose heartbeat expired (it stopped).
	beat(t, rdb, keys, "w-5", 5, "")
	beat(t, rdb, keys, "w-7", 7, "")
	beat(t, rdb, keys, "w-8", 8, "")
	beat(t, rdb, keys, "w-now", proxycfg.CapabilityVersion, "")
	beat(t, rdb, keys, "w-garbled", 0, "{not json")
	if err := rdb.HSet(ctx, keys.ConfigWorkers(), "w-gone", "1").Err(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		tenant  string
		noRedis bool
		want    outbox.ConfigStatus
	}{
		{name: "changed, not yet published", tenant: fresh,
			want: outbox.ConfigStatus{Generation: 1, Status: outbox.StatusOK, Workers: 4}},
		{name: "published, workers too old", tenant: published,
			want: outbox.ConfigStatus{Generation: 5, PublishedGeneration: 5, Status: outbox.StatusOK, Capability: 8, Workers: 4, WorkersTooOld: 2}},
		{name: "refused, the last good one serves", tenant: refused,
			want: outbox.ConfigStatus{Generation: 6, PublishedGeneration: 5, Status: outbox.StatusError,
				Error: "the compiled config is 300000 bytes, over the limit of 262144 bytes (config_bytes)", ErrorGeneration: 6,
				Capability: 8, Workers: 4, WorkersTooOld: 2}},
		{name: "a refusal a later publish superseded", tenant: stale,
			want: outbox.ConfigStatus{Generation: 5, PublishedGeneration: 5, Status: outbox.StatusOK, Capability: 8, Workers: 4, WorkersTooOld: 2}},
		{name: "every worker serves the base capability", tenant: base,
			want: outbox.ConfigStatus{Generation: 3, PublishedGeneration: 2, Status: outbox.StatusOK, Capability: 1, Workers: 4}},
		{name: "first change refused", tenant: neverGood,
			want: outbox.ConfigStatus{Generation: 1, Status: outbox.StatusError, Error: `api "orders": invalid`, ErrorGeneration: 1, Workers: 4}},
		{name: "no change recorded", tenant: unknown, want: outbox.ConfigStatus{Status: outbox.StatusOK, Workers: 4}},
		{name: "not an id", tenant: "acme", want: outbox.ConfigStatus{Status: outbox.StatusOK}},
		{name: "without Redis no worker is counted", tenant: published, noRedis: true,
			want: outbox.ConfigStatus{Generation: 5, PublishedGeneration: 5, Status: outbox.StatusOK, Capability: 8}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &outbox.StatusReader{DB: db, Redis: rdb, Keys: keys}
			if tc.noRedis {
				r.Redis = nil
			}
			got, err := r.ConfigStatus(ctx, tc.tenant)
			if err != nil {
				t.Fatal(err)
			}
			if (tc.want.PublishedGeneration > 0) != !got.PublishedAt.IsZero() {
				t.Errorf("published at %v with published generation %d", got.PublishedAt, got.PublishedGeneration)
			}
			got.PublishedAt = time.Time{}
			tc.want.TenantID = tc.tenant
			if got != tc.want {
				t.Errorf("status\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	// The stopped worker left the registry; the garbled one stays (its
	// heartbeat lives) but is not counted.
	ids, err := rdb.HKeys(ctx, keys.ConfigWorkers()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 5 {
		t.Errorf("registry %v, want the five live workers", ids)
	}
}
