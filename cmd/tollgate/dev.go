package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/proxy/worker"
	"github.com/tollgate/tollgate/services/mail"
	"github.com/tollgate/tollgate/services/store"
)

const (
	defaultDevDatabaseURL = "postgres://postgres@127.0.0.1:5432/tollgate_dev?sslmode=disable"
	devSecret             = "tollgate-dev-secret-not-for-production"
)

// devSeed is what the demo seed created, for printing.
type devSeed struct {
	AdminToken string
	Key        string
}

// cmdDev runs the whole platform in one process with a throwaway database and
// a seeded demo tenant. It prints what to open and a curl line that works.
func cmdDev(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	targets := fs.String("targets", "", "comma-separated backend URLs for the demo upstream (default: two demo backends in this process)")
	rate := fs.Int64("rate", 10, "requests per second allowed to the demo key")
	envFile := fs.String("env-file", "", "write TOLLGATE_DEMO_KEY, TOLLGATE_DEMO_URL and TOLLGATE_ADMIN_TOKEN to this file when ready")
	dbURL := fs.String("database", firstNonEmpty(getenv("TOLLGATE_DEV_DATABASE_URL"), defaultDevDatabaseURL),
		"throwaway database for dev (dropped and created anew at every start)")
	quiet := fs.Bool("quiet", false, "log warnings only")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// dev is for a laptop: secret, private upstreams and prefix have safe defaults.
	env := func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		switch name {
		case "TOLLGATE_SECRET":
			return devSecret
		case "TOLLGATE_UPSTREAM_ALLOW_PRIVATE":
			return "true"
		case "TOLLGATE_REDIS_PREFIX":
			return "tollgate-dev:"
		case "TOLLGATE_DEV":
			return "1"
		case "TOLLGATE_OPERATOR_TOKEN":
			return "dev-operator-" + randomToken()[:16]
		}
		return ""
	}
	cfg, err := loadConfig(env, true)
	if err != nil {
		return err
	}
	cfg.DatabaseURL = *dbURL
	if *quiet {
		cfg.LogLevel = slog.LevelWarn
	}
	log := cfg.logger()
	tr, err := newTracing(ctx, getenv, serviceControl, log)
	if err != nil {
		return err
	}
	defer tr.shutdown(log)
	// The in-process worker's spans are service tollgate-proxy, as in
	// production: a provider of its own, flushed after the worker stops.
	wtr, err := newTracing(ctx, getenv, serviceProxy, log)
	if err != nil {
		return err
	}
	defer wtr.shutdown(log)

	if err := ensureDatabase(ctx, cfg.DatabaseURL, true); err != nil {
		return fmt.Errorf("%w\nIs Postgres running? ./deploy/local/services.sh starts it", err)
	}
	if err := store.Migrate(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	db, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	rdb, err := newRedis(cfg.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := clearPrefix(ctx, rdb, cfg.RedisPrefix); err != nil {
		return fmt.Errorf("%w\nIs Redis running? ./deploy/local/services.sh starts it", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	spawn := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()

	var targetURLs []string
	if *targets != "" {
		for _, t := range strings.Split(*targets, ",") {
			targetURLs = append(targetURLs, strings.TrimSpace(t))
		}
	} else {
		for _, name := range []string{"a", "b"} {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return fmt.Errorf("demo backend: %w", err)
			}
			targetURLs = append(targetURLs, "http://"+ln.Addr().String())
			spawn("demo backend "+name, func() error { return serveHTTP(ctx, ln, demoBackend(name)) })
		}
	}

	if err := cfg.resolveDigestKey(ctx, db); err != nil {
		return err
	}
	deps := controlDeps{
		DigestKey: cfg.DigestKey, Limits: cfg.Limits,
		DB: db, Redis: rdb, Keys: cfg.keys(), Secret: cfg.Secret, OperatorToken: cfg.OperatorToken,
		AllowPrivate: cfg.AllowPrivate, Logger: log, PollInterval: time.Second,
		Tracing: tr.provider(),
	}
	controlLn, err := net.Listen("tcp", cfg.ControlAddr)
	if err != nil {
		return fmt.Errorf("listen on %s (TOLLGATE_CONTROL_ADDR): %w", cfg.ControlAddr, err)
	}
	// The tenant portal and the developer portals; their emails go to an
	// in-memory sink shown at /dev/mail.
	sink := &mail.Sink{}
	bill, err := newControlBilling(getenv, db, cfg.digestKey(), cfg.AllowPrivate, log)
	if err != nil {
		controlLn.Close()
		return err
	}
	deps.Billing, deps.Metering = bill.Service, bill.Metering
	if deps.Portal, err = newPortal(ctx, cfg, db, rdb, cfg.keys(), log, controlLn.Addr().String(), sink, bill); err != nil {
		controlLn.Close()
		return err
	}
	trafficLn, err := net.Listen("tcp", cfg.ProxyAddr)
	if err != nil {
		controlLn.Close()
		return fmt.Errorf("listen on %s (TOLLGATE_PROXY_ADDR): %w", cfg.ProxyAddr, err)
	}
	if cfg.ProxyPublicURL == "" {
		// The port actually bound (the configured one may be :0).
		cfg.ProxyPublicURL = "http://{slug}." + cfg.ProxyDomain + ":" + portOf(trafficLn.Addr())
	}
	deps.PublicURL = cfg.publicURL(controlLn.Addr().String())
	if deps.DevPortal, deps.Developers, err = newDevPortal(cfg, db, rdb, cfg.keys(), log, controlLn.Addr().String(), sink, deps.Billing); err != nil {
		controlLn.Close()
		trafficLn.Close()
		return err
	}
	deps.ControlHost = hostOfURL(cfg.publicURL(controlLn.Addr().String()))
	adminLn, err := net.Listen("tcp", cfg.ProxyAdminAddr)
	if err != nil {
		controlLn.Close()
		trafficLn.Close()
		return fmt.Errorf("listen on %s (TOLLGATE_PROXY_ADMIN_ADDR): %w", cfg.ProxyAdminAddr, err)
	}
	seed, err := seedDemo(apiClient{h: controlHandler(deps), token: cfg.OperatorToken}, targetURLs, *rate)
	if err != nil {
		controlLn.Close()
		trafficLn.Close()
		adminLn.Close()
		return fmt.Errorf("seed demo tenant: %w", err)
	}
	if err := seedPortalOwner(ctx, db, "demo"); err != nil {
		controlLn.Close()
		trafficLn.Close()
		adminLn.Close()
		return fmt.Errorf("seed demo portal owner: %w", err)
	}
	// The control plane's operator port; the default one may be taken (by
	// another Tollgate): then any free port, which the banner shows.
	if deps.AdminListener, err = listenOrFree(cfg.ControlAdminAddr, getenv("TOLLGATE_CONTROL_ADMIN_ADDR") != ""); err != nil {
		controlLn.Close()
		trafficLn.Close()
		adminLn.Close()
		return fmt.Errorf("listen on %s (TOLLGATE_CONTROL_ADMIN_ADDR): %w", cfg.ControlAdminAddr, err)
	}
	spawn("control", func() error { return serveControl(ctx, deps, controlLn) })
	wopts := worker.Options{
		Redis: rdb, Keys: cfg.keys(), Secret: cfg.Secret, DigestKey: cfg.DigestKey, Domain: cfg.ProxyDomain,
		AllowPrivateUpstreams: cfg.AllowPrivate, Logger: log, Tracer: wtr.worker(),
	}
	if err := proxyEnv(getenv, &wopts); err != nil {
		return err
	}
	if wopts.SnapshotFile == "off" {
		wopts.SnapshotFile = ""
	}
	w, err := worker.New(wopts)
	if err != nil {
		return err
	}
	spawn("proxy", func() error { return w.Serve(ctx, trafficLn, adminLn) })

	proxyPort := portOf(trafficLn.Addr())
	demoURL := fmt.Sprintf("http://demo.%s:%s/demo/", cfg.ProxyDomain, proxyPort)
	if err := waitDemo(ctx, trafficLn.Addr().String(), "demo."+cfg.ProxyDomain, seed.Key); err != nil {
		return errors.Join(err, <-errs)
	}
	controlURL := "http://localhost:" + portOf(controlLn.Addr())
	devPortalURL := "http://demo." + cfg.PortalDomain + ":" + portOf(controlLn.Addr())
	fmt.Fprintf(stdout, `
Tollgate is running (dev mode: throwaway database %s, Redis prefix %q).

  Tenant portal    %s/   (sign in as %s / %s, or sign up; mail it sends: %s/dev/mail)
  Developer portal %s/   (the demo API's docs, try-it and SDKs; sign up as a developer, the mail is at /dev/mail)
  Management API   %s/v1/   (OpenAPI: %s/v1/openapi.json)
  Proxy            %s  (tenant "demo", API /demo, key auth, %d requests/s)
  Proxy admin      http://localhost:%s/readyz
  Control metrics  http://localhost:%s/metrics   (also /healthz, /readyz)
  Demo backends    %s

  Operator token   %s
  Demo admin token %s
  Demo API key     %s

Try it:
  curl -i -H 'X-API-Key: %s' %shello
  (if your resolver does not map *.localhost to 127.0.0.1:
  curl -i -H 'Host: demo.%s' -H 'X-API-Key: %s' http://127.0.0.1:%s/demo/hello)

  curl -H 'Authorization: Bearer %s' %s/v1/apis

Stop with Ctrl-C.
`, dbName(cfg.DatabaseURL), cfg.RedisPrefix, cfg.publicURL(controlLn.Addr().String()), devPortalEmail, devPortalPassword, cfg.publicURL(controlLn.Addr().String()), devPortalURL, controlURL, controlURL, demoURL, *rate, portOf(adminLn.Addr()), portOf(deps.AdminListener.Addr()),
		strings.Join(targetURLs, " "), cfg.OperatorToken, seed.AdminToken, seed.Key,
		seed.Key, demoURL, cfg.ProxyDomain, seed.Key, proxyPort, seed.AdminToken, controlURL)
	if *envFile != "" {
		content := fmt.Sprintf("TOLLGATE_DEMO_KEY=%s\nTOLLGATE_DEMO_URL=%s\nTOLLGATE_ADMIN_TOKEN=%s\nTOLLGATE_DEMO_HOST=demo.%s\nTOLLGATE_PROXY_PORT=%s\nTOLLGATE_CONTROL_ADMIN_PORT=%s\n",
			seed.Key, demoURL, seed.AdminToken, cfg.ProxyDomain, proxyPort, portOf(deps.AdminListener.Addr()))
		if err := os.WriteFile(*envFile, []byte(content), 0o600); err != nil {
			return fmt.Errorf("write env file: %w", err)
		}
	}
	<-ctx.Done()
	cancel()
	wg.Wait()
	close(errs)
	return <-errs
}

// seedDemo creates the demo tenant and its objects through the management API.
func seedDemo(op apiClient, targets []string, rate int64) (devSeed, error) {
	var t createdTenant
	if err := op.do("POST", "/v1/tenants", map[string]string{"name": "Demo Inc.", "slug": "demo"}, &t); err != nil {
		return devSeed{}, err
	}
	c := apiClient{h: op.h, token: t.AdminToken}
	var tg []map[string]any
	for _, u := range targets {
		tg = append(tg, map[string]any{"url": u, "weight": 1})
	}
	var up, api, plan, consumer idOf
	if err := c.do("POST", "/v1/upstreams", map[string]any{
		"name": "demo-backends", "algorithm": "round_robin", "targets": tg,
		"health_check": map[string]any{"path": "/healthz", "interval_ms": 2000, "timeout_ms": 1000,
			"healthy_threshold": 1, "unhealthy_threshold": 2},
	}, &up); err != nil {
		return devSeed{}, err
	}
	if err := c.do("POST", "/v1/apis", map[string]any{
		"name": "Demo API", "slug": "demo", "base_path": "/demo", "upstream_id": up.ID, "auth": "key",
		"published": true,
	}, &api); err != nil {
		return devSeed{}, err
	}
	if err := c.doRaw("PUT", "/v1/apis/"+api.ID+"/openapi", demoOpenAPI); err != nil {
		return devSeed{}, err
	}
	if err := c.do("POST", "/v1/plans", map[string]any{
		"name": "Starter", "rate_limit": map[string]any{"requests": rate, "per_seconds": 1},
		"quota":   map[string]any{"requests": 10000, "period": "month"},
		"api_ids": []string{api.ID}, "public": true,
	}, &plan); err != nil {
		return devSeed{}, err
	}
	if err := c.do("PUT", "/v1/portal", map[string]any{
		"enabled": true, "signup": "open", "display_name": "Demo Developers", "accent_color": "#4f46e5",
	}, nil); err != nil {
		return devSeed{}, err
	}
	if err := c.do("POST", "/v1/consumers", map[string]any{"name": "Demo consumer", "email": "dev@demo.example"}, &consumer); err != nil {
		return devSeed{}, err
	}
	var key struct {
		Key string `json:"key"`
	}
	if err := c.do("POST", "/v1/keys", map[string]any{"consumer_id": consumer.ID, "plan_id": plan.ID}, &key); err != nil {
		return devSeed{}, err
	}
	return devSeed{AdminToken: t.AdminToken, Key: key.Key}, nil
}

// waitDemo polls the proxy until the demo key gets a 200, so the printed curl
// line works the moment it is printed.
func waitDemo(ctx context.Context, addr, host, key string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/demo/", nil)
		req.Host = host
		req.Header.Set("X-API-Key", key)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("demo API did not answer 200 through the proxy within 20s (last: %s)", last)
}

// listenOrFree listens on addr or, when addr is a default the operator did
// not choose (chosen false) and it is taken, on a free loopback port.
func listenOrFree(addr string, chosen bool) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil && !chosen {
		return net.Listen("tcp", "127.0.0.1:0")
	}
	return ln, err
}

func portOf(a net.Addr) string {
	_, p, _ := net.SplitHostPort(a.String())
	return p
}

func dbName(dsn string) string {
	if i := strings.LastIndex(dsn, "/"); i >= 0 {
		name := dsn[i+1:]
		if j := strings.Index(name, "?"); j >= 0 {
			name = name[:j]
		}
		return name
	}
	return dsn
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
