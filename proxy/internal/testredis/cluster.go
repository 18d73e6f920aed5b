package testredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// ClusterEnv names the variable that gives the local Redis Cluster the
// tests run on, as comma-separated seed addresses
// (deploy/local/redis-cluster.sh starts one and test.sh sets it).
const ClusterEnv = "TOLLGATE_TEST_REDIS_CLUSTER"

// ClusterAddrs returns the seed addresses of the test Redis Cluster. With
// none configured the test is skipped, except in CI (CI=true), where the
// Cluster is part of the contract and its absence fails the test.
func ClusterAddrs(tb testing.TB) []string {
	tb.Helper()
	var addrs []string
	for _, a := range strings.Split(os.Getenv(ClusterEnv), ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s is unset in CI; deploy/local/test.sh starts the cluster with deploy/local/redis-cluster.sh", ClusterEnv)
		}
		tb.Skipf("no Redis Cluster: set %s (deploy/local/redis-cluster.sh starts one)", ClusterEnv)
	}
	return addrs
}

// NewCluster is New on the test Redis Cluster: a Cluster client, and Keys
// with a prefix unique to this test whose keys (on every master) are
// deleted when the test ends.
func NewCluster(tb testing.TB) (redis.UniversalClient, proxycfg.Keys) {
	tb.Helper()
	addrs := ClusterAddrs(tb)
	id := uniqueID()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ClientName: "test-" + id})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		tb.Fatalf("redis cluster at %v: %v", addrs, err)
	}
	keys := proxycfg.Keys{Prefix: "test-" + id + ":"}
	tb.Cleanup(func() {
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

// Backend is a Redis deployment the tests run on.
type Backend struct {
	// Name names the subtest: "redis" or "cluster".
	Name string
	// New returns a client and Keys of a prefix of the test's own.
	New func(testing.TB) (redis.UniversalClient, proxycfg.Keys)
}

// Backends are the single Redis and the Redis Cluster: a test that runs on
// both shows that its keys, scripts and pipelines hold on a Cluster (keys
// one script touches share a hash tag) and behave the same on one server.
var Backends = []Backend{{Name: "redis", New: New}, {Name: "cluster", New: NewCluster}}

// Each runs f as a parallel subtest on every backend.
func Each(t *testing.T, f func(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys)) {
	t.Helper()
	for _, b := range Backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			rdb, keys := b.New(t)
			f(t, rdb, keys)
		})
	}
}

// KillSubscriptions closes, on the server side, every pub/sub connection of
// rdb (one of New's or NewCluster's clients, told apart from other tests'
// by their client name), as a Redis restart or a failover would; the
// subscribers must notice and subscribe again. It returns how many it
// closed.
func KillSubscriptions(tb testing.TB, rdb redis.UniversalClient) int {
	tb.Helper()
	ctx := context.Background()
	var killed atomic.Int64
	// kill closes the pub/sub connections named name on one node.
	kill := func(ctx context.Context, n *redis.Client, name string) error {
		list, err := n.Do(ctx, "CLIENT", "LIST", "TYPE", "pubsub").Text()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(list, "\n") {
			var id string
			match := false
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "id="); ok {
					id = v
				}
				if f == "name="+name {
					match = true
				}
			}
			if match && id != "" && n.Do(ctx, "CLIENT", "KILL", "ID", id).Err() == nil {
				killed.Add(1)
			}
		}
		return nil
	}
	var err error
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		name := c.Options().ClientName
		if name == "" {
			tb.Fatal("KillSubscriptions: the client has no name")
		}
		// ForEachShard calls on every node at once.
		err = c.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error { return kill(ctx, n, name) })
	case *redis.Client:
		if c.Options().ClientName == "" {
			tb.Fatal("KillSubscriptions: the client has no name")
		}
		err = kill(ctx, c, c.Options().ClientName)
	default:
		tb.Fatalf("KillSubscriptions: client %T", rdb)
	}
	if err != nil {
		tb.Fatalf("KillSubscriptions: %v", err)
	}
	return int(killed.Load())
}

func uniqueID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
