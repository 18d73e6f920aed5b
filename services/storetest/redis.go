package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// NewRedis returns a client of the test Redis (127.0.0.1:6379) and Keys with
// a prefix unique to the test, so tests sharing one Redis run in parallel;
// the prefix's keys are deleted and the client closed when the test ends.
func NewRedis(t testing.TB) (redis.UniversalClient, proxycfg.Keys) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("storetest: redis: %v", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	keys := proxycfg.Keys{Prefix: "test-" + hex.EncodeToString(b[:]) + ":"}
	t.Cleanup(func() {
		ctx := context.Background()
		var batch []string
		iter := rdb.Scan(ctx, 0, keys.Prefix+"*", 500).Iterator()
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
