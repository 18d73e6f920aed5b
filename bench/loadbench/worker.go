package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/worker"
)

// cmdWorker runs a proxy worker from proxy/worker with the options `tollgate
// proxy` gives it (same variables: TOLLGATE_REDIS_URL, TOLLGATE_REDIS_PREFIX,
// TOLLGATE_SECRET, TOLLGATE_PROXY_ADDR, TOLLGATE_PROXY_ADMIN_ADDR), plus
// -metering, which `tollgate proxy` does not offer: the feature-cost ladder
// needs a worker with metering off. No snapshot file is kept.
func cmdWorker(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	metering := fs.Bool("metering", true, "meter usage (ship it to Redis)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	env := func(name, def string) string {
		if v := strings.TrimSpace(os.Getenv(name)); v != "" {
			return v
		}
		return def
	}
	ro, err := redis.ParseURL(env("TOLLGATE_REDIS_URL", "redis://127.0.0.1:6379/0"))
	if err != nil {
		return fmt.Errorf("TOLLGATE_REDIS_URL: %w", err)
	}
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: []string{ro.Addr}, DB: ro.DB, Username: ro.Username, Password: ro.Password,
		TLSConfig: ro.TLSConfig, PoolSize: ro.PoolSize,
	})
	defer rdb.Close()
	secret := []byte(os.Getenv("TOLLGATE_SECRET"))
	if len(secret) == 0 {
		return fmt.Errorf("TOLLGATE_SECRET is required")
	}
	level := slog.LevelWarn
	_ = level.UnmarshalText([]byte(env("TOLLGATE_LOG_LEVEL", "warn")))
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	w, err := worker.New(worker.Options{
		Redis: rdb, Keys: proxycfg.Keys{Prefix: env("TOLLGATE_REDIS_PREFIX", "")}, Secret: secret,
		Domain: env("TOLLGATE_PROXY_DOMAIN", "localhost"), AllowPrivateUpstreams: env("TOLLGATE_UPSTREAM_ALLOW_PRIVATE", "") == "true",
		Logger: log, DisableMetering: !*metering,
	})
	if err != nil {
		return err
	}
	traffic, err := net.Listen("tcp", env("TOLLGATE_PROXY_ADDR", "127.0.0.1:8000"))
	if err != nil {
		return err
	}
	admin, err := net.Listen("tcp", env("TOLLGATE_PROXY_ADMIN_ADDR", "127.0.0.1:9000"))
	if err != nil {
		traffic.Close()
		return err
	}
	return w.Serve(ctx, traffic, admin)
}
