package configsync

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// deadRedis is a client of an address nothing listens on: Redis is down.
func deadRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDiskCacheServesWhileRedisDown(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "snapshot.json")
	build := func(snap *proxycfg.Snapshot) (*runtime, error) { return &runtime{gen: snap.Generation}, nil }

	// A worker runs with Redis up and caches what it loads.
	rdb, keys := testredis.New(t)
	testredis.Publish(t, rdb, keys, snapshot(7))
	s1, err := New(Options[runtime]{Redis: rdb, Keys: keys, PollInterval: 50 * time.Millisecond, Build: build, CacheFile: file})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s1.Run(ctx) }()
	waitGen(t, s1, 7)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(file); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("snapshot not written to disk")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done

	tests := []struct {
		name      string
		content   []byte // nil keeps the cached file
		wantReady bool
	}{
		{name: "restart with redis down serves the cached snapshot", wantReady: true},
		{name: "corrupt cache is rejected", content: []byte(`{"schema":1,"generation":`), wantReady: false},
		{name: "invalid cache is rejected", content: []byte(`{"schema":99,"generation":3,"tenants":[]}`), wantReady: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := file
			if tc.content != nil {
				f = filepath.Join(t.TempDir(), "snapshot.json")
				if err := os.WriteFile(f, tc.content, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s2, err := New(Options[runtime]{Redis: deadRedis(t), Keys: keys, PollInterval: 50 * time.Millisecond,
				Timeout: 200 * time.Millisecond, Build: build, CacheFile: f})
			if err != nil {
				t.Fatal(err)
			}
			run(t, s2)
			if tc.wantReady {
				waitGen(t, s2, 7)
				return
			}
			time.Sleep(150 * time.Millisecond)
			if s2.Ready() {
				t.Fatalf("ready with a bad cache (generation %d)", s2.Generation())
			}
		})
	}
}

func TestDiskCacheYieldsToRedis(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "snapshot.json")
	raw, err := json.Marshal(snapshot(40))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	// Redis, the truth once reachable, is at an older generation than the
	// cache (another deployment's cache, or a restored control plane).
	rdb, keys := testredis.New(t)
	testredis.Publish(t, rdb, keys, snapshot(3))
	s, err := New(Options[runtime]{Redis: rdb, Keys: keys, PollInterval: 50 * time.Millisecond, CacheFile: file,
		Build: func(snap *proxycfg.Snapshot) (*runtime, error) { return &runtime{gen: snap.Generation}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	waitGen(t, s, 3)
	// From then on only newer generations replace it.
	testredis.Publish(t, rdb, keys, snapshot(4))
	waitGen(t, s, 4)
}
