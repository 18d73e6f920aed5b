package main

import (
	"context"
	"fmt"
	"net"

	"github.com/tollgate/tollgate/proxy/worker"
)

func cmdProxy(ctx context.Context, args []string, getenv func(string) string) error {
	if len(args) > 0 {
		return fmt.Errorf("proxy takes no arguments (configure it with TOLLGATE_* variables)")
	}
	cfg, err := loadConfig(getenv, true)
	if err != nil {
		return err
	}
	log := cfg.logger()
	rdb, err := newRedis(cfg.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	opts := worker.Options{
		Redis: rdb, Keys: cfg.keys(), Secret: cfg.Secret, Domain: cfg.ProxyDomain,
		AllowPrivateUpstreams: cfg.AllowPrivate, Logger: log,
	}
	if err := proxyEnv(getenv, &opts); err != nil {
		return err
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
