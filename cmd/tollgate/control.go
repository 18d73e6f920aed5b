package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/tollgate/tollgate/billing"
	"github.com/tollgate/tollgate/billing/metering"
	"github.com/tollgate/tollgate/proxy/outage"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/ctlmetrics"
	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/services/mgmtapi"
	"github.com/tollgate/tollgate/services/publish"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/store"
	usagesvc "github.com/tollgate/tollgate/services/usage"
	"github.com/tollgate/tollgate/web/devportal"
)

// controlDeps are the open connections the control plane runs on.
type controlDeps struct {
	DB            *pgxpool.Pool
	Redis         redis.UniversalClient
	Keys          proxycfg.Keys
	Secret        []byte
	OperatorToken string
	AllowPrivate  bool
	Logger        *slog.Logger
	PollInterval  time.Duration
	// Portal is the tenant portal, mounted at "/"; nil serves a plain index.
	Portal http.Handler
	// DevPortal serves the developer portals' hosts; nil serves none.
	DevPortal *devportal.Portal
	// Developers is the developer accounts service (for /v1's approvals).
	Developers *developers.Service
	// ControlHost is the control plane's public host name (TOLLGATE_PUBLIC_URL).
	ControlHost string
	// Billing is Stripe billing (nil Stripe client: off); nil mounts none
	// of its routes.
	Billing *billing.Service
	// PublicURL is the control plane's external URL (links in key records).
	PublicURL string
	// Metering reports usage to Stripe when billing is on
	// (newControlBilling); nil makes serveControl build its own.
	Metering *metering.Runner
	// DBMonitor logs Postgres outages; nil makes one with the defaults.
	DBMonitor *store.Monitor
	// Limits are the operator's per-tenant limits (TOLLGATE_LIMIT_*); nil
	// means the defaults.
	Limits *limits.Limits
	// DigestKey keys API key and admin token digests (the installation's,
	// config.resolveDigestKey); nil means Secret.
	DigestKey []byte
	// Metrics are the control plane's metrics; nil makes serveControl
	// build them (newControlMetrics). controlHandler instruments its
	// handlers with them.
	Metrics *ctlmetrics.Metrics
	// AdminListener serves the operator port (TOLLGATE_CONTROL_ADMIN_ADDR:
	// /metrics, /healthz, /readyz); nil serves none.
	AdminListener net.Listener
	// Tracing, when set, gives every request of the public port a span
	// named by its route pattern (traceHTTP); nil is tracing off.
	Tracing trace.TracerProvider
}

// controlHandler is the control plane's HTTP surface: /v1 and a health probe.
func controlHandler(d controlDeps) http.Handler {
	surface := controlSurface(d.Portal != nil)
	h := traceHTTP(d.Metrics.Instrument(controlMux(d), surface), d.Tracing, surface)
	if d.DevPortal != nil {
		dev := ctlmetrics.Surface(ctlmetrics.SurfaceDevPortal)
		return hostRouter(d.DevPortal, traceHTTP(d.Metrics.Instrument(d.DevPortal, dev), d.Tracing, dev),
			d.ControlHost, h)
	}
	return h
}

func controlMux(d controlDeps) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/", mgmtapi.New(mgmtapi.Options{
		DB: d.DB, Secret: d.Secret, OperatorToken: d.OperatorToken,
		AllowPrivateUpstreams: d.AllowPrivate, Logger: d.Logger, Redis: d.Redis, Keys: d.Keys,
		Developers: d.Developers, Limits: d.Limits, DigestKey: d.DigestKey,
		ConfigSize: publish.TenantConfigBytes,
	}))
	if d.Billing != nil {
		mountBilling(mux, d)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := d.DB.Ping(ctx); err != nil {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	if d.Portal != nil {
		mux.Handle("/", d.Portal)
		return mux
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "Tollgate control plane.\nManagement API: /v1/ (OpenAPI document at /v1/openapi.json)")
	})
	return mux
}

// Control plane HTTP server limits. A slow client cannot hold a connection
// open for long while sending headers or a body, and a handler's answer has
// WriteTimeout to be written: the slowest ones, an SDK download (generated
// on first use) and a try-it relay call (30s at most, tryit.DefaultTimeout),
// fit with room to spare.
const (
	controlReadHeaderTimeout = 10 * time.Second
	controlReadTimeout       = 30 * time.Second
	controlWriteTimeout      = 75 * time.Second
	controlIdleTimeout       = 120 * time.Second
	controlMaxHeaderBytes    = 64 << 10
)

// controlServer is the control plane's HTTP server for h.
func controlServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: controlReadHeaderTimeout,
		ReadTimeout:       controlReadTimeout,
		WriteTimeout:      controlWriteTimeout,
		IdleTimeout:       controlIdleTimeout,
		MaxHeaderBytes:    controlMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// serveControl runs the management API on ln and the config publisher until
// ctx is cancelled, then shuts the server down gracefully.
func serveControl(ctx context.Context, d controlDeps, ln net.Listener) error {
	// Postgres outages are logged once, then once a minute, then once on
	// recovery; requests meanwhile answer 503 (mgmtapi, portals).
	dbWatch := d.DBMonitor
	if dbWatch == nil {
		dbWatch = &store.Monitor{DB: d.DB, Logger: d.Logger.With("component", "postgres")}
	}
	if d.Metrics == nil {
		d.Metrics = newControlMetrics(d, dbWatch)
	}
	srv := controlServer(controlHandler(d), d.Logger)
	pub := publish.New(publish.Options{
		DB: d.DB, Redis: d.Redis, Keys: d.Keys, Logger: d.Logger, PollInterval: d.PollInterval,
		BillingURL: billingLink(d), Observer: d.Metrics.Publisher(), Limits: d.Limits,
	})
	agg, err := usagesvc.NewAggregator(usagesvc.AggregatorOptions{DB: d.DB, Redis: d.Redis, Keys: d.Keys,
		Logger: d.Logger.With("component", "usage"), Observer: d.Metrics.Usage()})
	if err != nil {
		return fmt.Errorf("usage aggregator: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	// The usage aggregator only returns when ctx ends; it retries failures.
	wg.Go(func() { _ = agg.Run(ctx) })
	wg.Go(func() { dbWatch.Run(ctx) })
	wg.Go(func() { d.Metrics.Run(ctx) })
	wg.Go(func() { recheckDomains(ctx, d) })
	if d.Billing.Enabled() {
		// Stripe work (plan products and prices) from the billing outbox,
		// and metered usage as meter events.
		runner := &billing.Runner{Billing: d.Billing}
		wg.Go(func() { _ = runner.Run(ctx) })
		// The runner the tenant portal's usage repair wakes, when the
		// caller built one (newMetering); else one of its own.
		meters := d.Metering
		if meters == nil {
			var err error
			meters, err = metering.New(metering.Options{DB: d.DB, Client: d.Billing.Stripe,
				Logger: d.Logger.With("component", "metering")})
			if err != nil {
				return fmt.Errorf("metering: %w", err)
			}
			d.Metering = meters
		}
		wg.Go(func() { _ = meters.Run(ctx) })
		watchBilling(d, meters)
	}
	errs := make(chan error, 3)
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := pub.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			errs <- fmt.Errorf("publisher: %w", err)
			cancel()
		}
	}()
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("control server: %w", err)
			cancel()
		}
	}()
	var admin *http.Server
	if d.AdminListener != nil {
		admin = adminServer(controlAdmin(d), d.Logger)
		wg.Go(func() {
			if err := admin.Serve(d.AdminListener); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("control admin server: %w", err)
				cancel()
			}
		})
	}
	<-ctx.Done()
	shutCtx, shutCancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer shutCancel()
	_ = srv.Shutdown(shutCtx)
	if admin != nil {
		_ = admin.Shutdown(shutCtx)
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func cmdControl(ctx context.Context, args []string, getenv func(string) string) error {
	if len(args) > 0 {
		return fmt.Errorf("control takes no arguments (configure it with TOLLGATE_* variables)")
	}
	cfg, err := loadConfig(getenv, true)
	if err != nil {
		return err
	}
	log := cfg.logger()
	if advice := cfg.secretAdvice(); advice != "" {
		log.Warn("TOLLGATE_SECRET is accepted but weak", "advice", advice)
	}
	tr, err := newTracing(ctx, getenv, serviceControl, log)
	if err != nil {
		return err
	}
	defer tr.shutdown(log)
	db, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	outage.RouteRedisLogs(log, 0)
	rdb, err := newRedis(cfg.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	ln, err := net.Listen("tcp", cfg.ControlAddr)
	if err != nil {
		return fmt.Errorf("listen on TOLLGATE_CONTROL_ADDR: %w", err)
	}
	adminLn, err := net.Listen("tcp", cfg.ControlAdminAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("listen on TOLLGATE_CONTROL_ADMIN_ADDR: %w", err)
	}
	defer adminLn.Close()
	log.Info("control plane listening", "addr", ln.Addr().String(), "admin_addr", adminLn.Addr().String())
	// Billing first: the tenant portal's billing page and the developer
	// portals use it, and the portal's usage repair wakes the metering
	// runner serveControl runs.
	if err := cfg.resolveDigestKey(ctx, db); err != nil {
		ln.Close()
		return err
	}
	bill, err := newControlBilling(getenv, db, cfg.digestKey(), cfg.AllowPrivate, log)
	if err != nil {
		ln.Close()
		return err
	}
	web, err := newPortal(ctx, cfg, db, rdb, cfg.keys(), log, ln.Addr().String(), nil, bill)
	if err != nil {
		ln.Close()
		return err
	}
	dp, devs, err := newDevPortal(cfg, db, rdb, cfg.keys(), log, ln.Addr().String(), nil, bill.Service)
	if err != nil {
		ln.Close()
		return err
	}
	return serveControl(ctx, controlDeps{
		DB: db, Redis: rdb, Keys: cfg.keys(), Secret: cfg.Secret, OperatorToken: cfg.OperatorToken,
		AllowPrivate: cfg.AllowPrivate, Logger: log, Portal: web, DevPortal: dp, Developers: devs,
		ControlHost: hostOfURL(cfg.publicURL(ln.Addr().String())), Billing: bill.Service,
		DigestKey: cfg.DigestKey, Limits: cfg.Limits,
		PublicURL: cfg.publicURL(ln.Addr().String()), Metering: bill.Metering, AdminListener: adminLn,
		Tracing: tr.provider(),
	}, ln)
}

// billingLink is the stable payment link of past-due keys' 402 answers.
func billingLink(d controlDeps) string {
	if d.Billing == nil || d.PublicURL == "" {
		return ""
	}
	return d.PublicURL + "/billing/subscriptions/{subscription}"
}

// recheckDomains re-verifies verified custom domains a day after their
// last check (a domain whose TXT record is gone stops being served) and
// prunes expired claims, every ten minutes until ctx ends. Every replica may
// run it: each domain's check is one row update.
func recheckDomains(ctx context.Context, d controlDeps) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := settings.RecheckDomains(ctx, d.DB, net.DefaultResolver.LookupTXT, 24*time.Hour); err != nil && ctx.Err() == nil {
			d.Logger.Warn("custom domain recheck failed", "err", err)
		}
	}
}
