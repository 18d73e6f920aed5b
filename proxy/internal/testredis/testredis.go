// Package testredis gives proxy tests their own corner of the real Redis: a
// client and a unique key prefix whose keys are deleted when the test ends,
// plus helpers that publish configs (seed) and key records the way the
// control plane does.
package testredis

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/configsync/seed"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// Addr is the Redis the tests use; TOLLGATE_TEST_REDIS_ADDR overrides it.
func Addr() string {
	if a := os.Getenv("TOLLGATE_TEST_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// New returns a client of the test Redis and Keys with a prefix unique to
// this test. Both are cleaned up with the test.
func New(tb testing.TB) (redis.UniversalClient, proxycfg.Keys) {
	tb.Helper()
	id := uniqueID()
	// The name tells this test's connections apart (KillSubscriptions).
	rdb := redis.NewClient(&redis.Options{Addr: Addr(), ClientName: "test-" + id})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		tb.Fatalf("redis at %s: %v", Addr(), err)
	}
	keys := proxycfg.Keys{Prefix: "test-" + id + ":"}
	tb.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, keys.Prefix+"*", 500).Iterator()
		var batch []string
		for iter.Next(ctx) {
			batch = append(batch, iter.Val())
		}
		if len(batch) > 0 {
			rdb.Del(ctx, batch...)
		}
		rdb.Close()
	})
	return rdb, keys
}

// Store writes snap as the control plane publishes a config (the index at
// sequence snap.Generation and each tenant's shard, seed.Snapshot), without
// announcing it.
func Store(tb testing.TB, rdb redis.UniversalClient, keys proxycfg.Keys, snap *proxycfg.Snapshot) {
	tb.Helper()
	if _, err := seed.Snapshot(context.Background(), rdb, keys, snap); err != nil {
		tb.Fatal(err)
	}
}

// StoreShard writes raw as tenant's shard at generation gen and makes it
// the tenant's current one at index sequence seq, without announcing it.
func StoreShard(tb testing.TB, rdb redis.UniversalClient, keys proxycfg.Keys, seq int64, tenant string, gen int64, raw []byte) {
	tb.Helper()
	digest := 0
	if v, err := rdb.HGet(context.Background(), keys.ConfigIndex(), proxycfg.IndexDigestField).Int(); err == nil {
		digest = v
	}
	if _, err := seed.Shards(context.Background(), rdb, keys, seq, digest,
		[]seed.Shard{{TenantID: tenant, Generation: gen, Raw: raw}}, nil); err != nil {
		tb.Fatal(err)
	}
}

// Announce publishes the config message of index sequence seq, naming the
// tenants its change log entry names.
func Announce(tb testing.TB, rdb redis.UniversalClient, keys proxycfg.Keys, seq int64) {
	tb.Helper()
	ctx := context.Background()
	id := strconv.FormatInt(seq, 10) + "-1"
	var tenants []string
	if es, err := rdb.XRange(ctx, keys.ConfigLog(), id, id).Result(); err == nil && len(es) == 1 {
		if v, ok := es[0].Values[proxycfg.LogTenantsField].(string); ok && v != "" {
			tenants = strings.Split(v, ",")
		}
	}
	if err := seed.Announce(ctx, rdb, keys, seq, tenants); err != nil {
		tb.Fatal(err)
	}
}

// Publish stores snap and announces it, as the control plane does.
func Publish(tb testing.TB, rdb redis.UniversalClient, keys proxycfg.Keys, snap *proxycfg.Snapshot) {
	tb.Helper()
	Store(tb, rdb, keys, snap)
	Announce(tb, rdb, keys, snap.Generation)
}

// PutKey stores the record of key (digested with secret) without announcing
// the change.
func PutKey(tb testing.TB, rdb redis.UniversalClient, keys proxycfg.Keys, secret []byte, key string, rec proxycfg.KeyRecord) {
	tb.Helper()
	raw, err := json.Marshal(rec)
	if err != nil {
		tb.Fatal(err)
	}
	if err := rdb.Set(context.Background(), keys.Key(proxycfg.Digest(secret, key)), raw, 0).Err(); err != nil {
		tb.Fatal(err)
	}
}

// AnnounceKey publishes the digest of key on the key channel.
func AnnounceKey(tb testing.TB, rdb redis.UniversalClient, keys proxycfg.Keys, secret []byte, key string) {
	tb.Helper()
	if err := rdb.Publish(context.Background(), keys.KeyChannel(), proxycfg.Digest(secret, key)).Err(); err != nil {
		tb.Fatal(err)
	}
}
