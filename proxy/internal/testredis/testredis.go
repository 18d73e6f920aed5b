// Package testredis gives proxy tests their own corner of the real Redis: a
// client and a unique key prefix whose keys are deleted when the test ends,
// plus helpers that publish snapshots and key records the way the control
// plane does.
package testredis

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

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

// Store writes snap under its generation and makes it current, without
// announcing it.
func Store(tb testing.TB, rdb redis.UniversalClient, keys proxycfg.Keys, snap *proxycfg.Snapshot) {
	tb.Helper()
	raw, err := json.Marshal(snap)
	if err != nil {
		tb.Fatal(err)
	}
	StoreRaw(tb, rdb, keys, snap.Generation, raw)
}

// StoreRaw writes raw as the snapshot of gen and makes gen current.
func StoreRaw(tb testing.TB, rdb redis.UniversalClient, keys proxycfg.Keys, gen int64, raw []byte) {
	tb.Helper()
	ctx := context.Background()
	if err := rdb.Set(ctx, keys.Snapshot(gen), raw, 0).Err(); err != nil {
		tb.Fatal(err)
	}
	if err := rdb.Set(ctx, keys.Current(), strconv.FormatInt(gen, 10), 0).Err(); err != nil {
		tb.Fatal(err)
	}
}

// Announce publishes gen on the config channel.
func Announce(tb testing.TB, rdb redis.UniversalClient, keys proxycfg.Keys, gen int64) {
	tb.Helper()
	if err := rdb.Publish(context.Background(), keys.ConfigChannel(), strconv.FormatInt(gen, 10)).Err(); err != nil {
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
