package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// RedisClusterEnv names the variable that gives the local Redis Cluster the
// tests run on, as comma-separated seed addresses
// (deploy/local/redis-cluster.sh starts one and test.sh sets it).
const RedisClusterEnv = "TOLLGATE_TEST_REDIS_CLUSTER"

// RedisClusterAddrs returns the seed addresses of the test Redis Cluster.
// With none configured the test is skipped, except in CI (CI=true), where
// its absence fails the test.
func RedisClusterAddrs(t testing.TB) []string {
	t.Helper()
	var addrs []string
	for _, a := range strings.Split(os.Getenv(RedisClusterEnv), ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is unset in CI; deploy/local/test.sh starts the cluster with deploy/local/redis-cluster.sh", RedisClusterEnv)
		}
		t.Skipf("no Redis Cluster: set %s (deploy/local/redis-cluster.sh starts one)", RedisClusterEnv)
	}
	return addrs
}

// NewRedisCluster is NewRedis on the test Redis Cluster: a Cluster client
// and Keys with a prefix unique to the test, whose keys (on every master)
// are deleted when the test ends.
func NewRedisCluster(t testing.TB) (redis.UniversalClient, proxycfg.Keys) {
	t.Helper()
	addrs := RedisClusterAddrs(t)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("storetest: redis cluster at %v: %v", addrs, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	keys := proxycfg.Keys{Prefix: "test-" + hex.EncodeToString(b[:]) + ":"}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = rdb.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			iter := node.Scan(ctx, 0, keys.Prefix+"*", 500).Iterator()
			pipe := node.Pipeline()
			for iter.Next(ctx) {
				// One key per DEL: the keys of a node span many slots.
				pipe.Del(ctx, iter.Val())
			}
			_, err := pipe.Exec(ctx)
			return err
		})
		rdb.Close()
	})
	return rdb, keys
}

// RedisBackend is a Redis deployment the tests run on.
type RedisBackend struct {
	// Name names the subtest: "redis" or "cluster".
	Name string
	// New returns a client and Keys of a prefix of the test's own.
	New func(testing.TB) (redis.UniversalClient, proxycfg.Keys)
}

// RedisBackends are the single Redis and the Redis Cluster.
var RedisBackends = []RedisBackend{{Name: "redis", New: NewRedis}, {Name: "cluster", New: NewRedisCluster}}

// EachRedis runs f as a parallel subtest on every Redis backend.
func EachRedis(t *testing.T, f func(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys)) {
	t.Helper()
	for _, b := range RedisBackends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			rdb, keys := b.New(t)
			f(t, rdb, keys)
		})
	}
}
