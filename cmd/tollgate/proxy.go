package main

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/tollgate/tollgate/proxy/configsync"
	"github.com/tollgate/tollgate/proxy/outage"
	"github.com/tollgate/tollgate/proxy/worker"
	"github.com/tollgate/tollgate/services/secrets"
)

func cmdProxy(ctx context.Context, args []string, getenv func(string) string) error {
	if len(args) > 0 {
		return fmt.Errorf("proxy takes no arguments (configure it with TOLLGATE_* variables)")
	}
	// A worker given TOLLGATE_DIGEST_KEY needs no secret.
	cfg, err := loadConfig(getenv, strings.TrimSpace(getenv("TOLLGATE_DIGEST_KEY")) == "")
	if err != nil {
		return err
	}
	var digestKey []byte
	if cfg.DigestKeyHex != "" {
		if digestKey, err = secrets.ParseKey(cfg.DigestKeyHex); err != nil {
			return fmt.Errorf("TOLLGATE_DIGEST_KEY: %w", err)
		}
	}
	log := cfg.logger()
	if advice := cfg.secretAdvice(); advice != "" {
		log.Warn("TOLLGATE_SECRET is accepted but weak", "advice", advice)
	}
	// Spans still queued are flushed once Serve has drained the requests.
	tr, err := newTracing(ctx, getenv, serviceProxy, log)
	if err != nil {
		return err
	}
	defer tr.shutdown(log)
	// go-redis's own log lines, rate-limited, into the JSON log.
	outage.RouteRedisLogs(log, 0)
	rdb, err := newRedis(cfg.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	opts := worker.Options{
		Redis: rdb, Keys: cfg.keys(), Secret: cfg.Secret, DigestKey: digestKey, Domain: cfg.ProxyDomain,
		AllowPrivateUpstreams: cfg.AllowPrivate, Logger: log, Tracer: tr.worker(),
	}
	if err := proxyEnv(getenv, &opts); err != nil {
		return err
	}
	switch opts.SnapshotFile {
	case "":
		// Safe by default: the last good config survives a restart while
		// Redis is down.
		opts.SnapshotFile = configsync.DefaultSnapshotPath(cfg.RedisURL, cfg.RedisPrefix)
		log.Info("keeping the last good config on disk", "file", opts.SnapshotFile)
	case "off":
		opts.SnapshotFile = ""
	}
	w, err := worker.New(opts)
	if err != nil {
		return err
	}
	traffic, err := net.Listen("tcp", cfg.ProxyAddr)
	if err != nil {
		return fmt.Errorf("listen on TOLLGATE_PROXY_ADDR: %w", err)
	}
	admin, err := net.Listen("tcp", cfg.ProxyAdminAddr)
	if err != nil {
		traffic.Close()
		return fmt.Errorf("listen on TOLLGATE_PROXY_ADMIN_ADDR: %w", err)
	}
	log.Info("proxy worker listening", "traffic", traffic.Addr().String(), "admin", admin.Addr().String())
	return w.Serve(ctx, traffic, admin)
}
