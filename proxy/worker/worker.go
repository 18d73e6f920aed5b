// Package worker is a Tollgate data-plane worker: it wires config sync, key
// auth, rate limiting, balancing and health checks into the pipeline and
// serves traffic with fasthttp, forwarding over keep-alive HostClients.
package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/configsync"
	"github.com/tollgate/tollgate/proxy/health"
	"github.com/tollgate/tollgate/proxy/keyauth"
	"github.com/tollgate/tollgate/proxy/netguard"
	"github.com/tollgate/tollgate/proxy/pipeline"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/ratelimit"
)

// Defaults of Options.
const (
	DefaultDomain          = "localhost"
	DefaultShutdownTimeout = 30 * time.Second
)

// Options configure a Worker.
type Options struct {
	// Redis carries snapshots, key records, rate-limit state and events; required.
	Redis redis.UniversalClient
	// Keys names the Redis keys (Prefix separates deployments and tests).
	Keys proxycfg.Keys
	// Secret is TOLLGATE_SECRET, the key of the API key digests; required.
	Secret []byte
	// Domain is TOLLGATE_PROXY_DOMAIN; tenants are served at <slug>.<Domain>.
	// Empty means "localhost".
	Domain string
	// AllowPrivateUpstreams is TOLLGATE_UPSTREAM_ALLOW_PRIVATE: it turns the
	// SSRF guard off for targets on loopback, private or link-local addresses.
	AllowPrivateUpstreams bool
	// Logger receives the worker's logs; nil means slog.Default().
	Logger *slog.Logger
	// PollInterval is how often the current generation is polled; 0 means 1s.
	PollInterval time.Duration
	// ShutdownTimeout bounds how long in-flight requests may finish after
	// ctx is cancelled; 0 means 30s.
	ShutdownTimeout time.Duration
}

// Worker is one proxy worker. Create it with New and run it with Serve.
type Worker struct {
	opts     Options
	logger   *slog.Logger
	dialer   *netguard.Dialer
	health   *health.Checker
	keys     *keyauth.Store
	pipe     pipeline.Pipeline
	sync     *configsync.Syncer[pipeline.Runtime]
	draining atomic.Bool
	served   atomic.Bool

	bg context.Context // lives until Serve's shutdown ends; health checks use it

	clientsMu sync.Mutex
	clients   map[string]*fasthttp.HostClient // by scheme://host:port

	idPrefix [16]byte // hex of random bytes, prefix of generated request ids
	idSeq    atomic.Uint64
}

// New makes a Worker. It does not touch the network; Serve does.
func New(opts Options) (*Worker, error) {
	if opts.Redis == nil {
		return nil, errors.New("worker: nil redis client")
	}
	if len(opts.Secret) == 0 {
		return nil, errors.New("worker: empty secret")
	}
	if opts.Domain == "" {
		opts.Domain = DefaultDomain
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	w := &Worker{
		opts:    opts,
		logger:  opts.Logger,
		dialer:  &netguard.Dialer{AllowPrivate: opts.AllowPrivateUpstreams},
		clients: map[string]*fasthttp.HostClient{},
		bg:      context.Background(),
	}
	var rb [8]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return nil, fmt.Errorf("worker: request id seed: %w", err)
	}
	hex.Encode(w.idPrefix[:], rb[:])
	w.health = health.New(w.dialer, opts.Logger.With("component", "health"))
	keys, err := keyauth.New(keyauth.Options{
		Redis:  opts.Redis,
		Keys:   opts.Keys,
		Secret: opts.Secret,
		Logger: opts.Logger.With("component", "keyauth"),
	})
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	w.keys = keys
	w.pipe = pipeline.Pipeline{
		Keys:    keys,
		Limiter: ratelimit.NewRedis(opts.Redis, opts.Keys, nil, opts.Logger.With("component", "ratelimit")),
	}
	w.sync, err = configsync.New(configsync.Options[pipeline.Runtime]{
		Redis:        opts.Redis,
		Keys:         opts.Keys,
		Build:        w.build,
		Swapped:      w.swapped,
		PollInterval: opts.PollInterval,
		Logger:       opts.Logger.With("component", "configsync"),
	})
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	return w, nil
}

// Ready reports whether the worker serves traffic: it has a good snapshot
// and is not shutting down.
func (w *Worker) Ready() bool { return w.sync.Ready() && !w.draining.Load() }

// Generation is the generation of the live config (0 before the first).
func (w *Worker) Generation() int64 { return w.sync.Generation() }

func (w *Worker) build(snap *proxycfg.Snapshot) (*pipeline.Runtime, error) {
	return pipeline.Build(snap, pipeline.BuildOptions{
		Domain: w.opts.Domain,
		Health: w.health,
		Attach: w.attach,
	})
}

// attach gives a target its HostClient, reusing the one of an unchanged
// address so that keep-alive connections survive reloads.
func (w *Worker) attach(t *pipeline.Target) {
	key := t.Scheme + "://" + t.Host
	w.clientsMu.Lock()
	defer w.clientsMu.Unlock()
	c := w.clients[key]
	if c == nil {
		c = &fasthttp.HostClient{
			Addr:                     t.Host,
			Name:                     "tollgate",
			IsTLS:                    t.Scheme == "https",
			DialTimeout:              w.dialer.DialTimeout,
			MaxConns:                 4096,
			MaxConnWaitTimeout:       5 * time.Second,
			MaxIdleConnDuration:      60 * time.Second,
			NoDefaultUserAgentHeader: true,
			ReadBufferSize:           16 << 10,
		}
		w.clients[key] = c
	}
	t.Handle = c
}

// swapped runs after a new runtime went live: health checks follow it and
// HostClients of addresses no longer used are closed.
func (w *Worker) swapped(_, cur *pipeline.Runtime) {
	ups := cur.HealthUpstreams()
	w.health.Sync(w.bg, ups)
	w.clientsMu.Lock()
	defer w.clientsMu.Unlock()
	used := map[string]bool{}
	cur.EachTarget(func(t *pipeline.Target) { used[t.Scheme+"://"+t.Host] = true })
	for k, c := range w.clients {
		if !used[k] {
			// In-flight requests of the old runtime keep their connections;
			// only idle ones close.
			c.CloseIdleConnections()
			delete(w.clients, k)
		}
	}
}

// Serve serves traffic on traffic, and /healthz and /readyz (503 until the
// first snapshot and while shutting down) on admin. When ctx is cancelled it
// shuts down gracefully: /readyz turns 503, traffic stops being accepted,
// in-flight requests finish (up to ShutdownTimeout) and background loops
// stop; then it returns nil. Serve may be called once.
func (w *Worker) Serve(ctx context.Context, traffic, admin net.Listener) error {
	if !w.served.CompareAndSwap(false, true) {
		return errors.New("worker: Serve called twice")
	}
	bg, stopBG := context.WithCancel(context.Background())
	w.bg = bg
	var loops sync.WaitGroup
	loops.Go(func() { _ = w.sync.Run(bg) })
	loops.Go(func() { _ = w.keys.Run(bg) })
	defer func() {
		stopBG()
		loops.Wait()
		w.health.Close()
		w.clientsMu.Lock()
		for _, c := range w.clients {
			c.CloseIdleConnections()
		}
		w.clientsMu.Unlock()
	}()

	srv := &fasthttp.Server{
		Handler:               w.HandleFastHTTP,
		Name:                  "tollgate",
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		ReadTimeout:           60 * time.Second,
		IdleTimeout:           60 * time.Second,
		MaxRequestBodySize:    32 << 20,
		CloseOnShutdown:       true,
		Logger:                fasthttpLogger{w.logger},
	}
	adminSrv := &http.Server{Handler: w.adminHandler(), ReadHeaderTimeout: 10 * time.Second}

	errc := make(chan error, 2)
	go func() {
		if err := srv.Serve(traffic); err != nil {
			errc <- fmt.Errorf("serve traffic: %w", err)
		}
	}()
	go func() {
		if err := adminSrv.Serve(admin); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serve admin: %w", err)
		}
	}()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	w.draining.Store(true)
	w.logger.Info("proxy worker shutting down", "timeout", w.opts.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), w.opts.ShutdownTimeout)
	defer cancel()
	if err := srv.ShutdownWithContext(sctx); err != nil {
		w.logger.Warn("traffic shutdown incomplete", "err", err)
	}
	if err := adminSrv.Shutdown(sctx); err != nil {
		w.logger.Warn("admin shutdown incomplete", "err", err)
		_ = adminSrv.Close()
	}
	return serveErr
}

func (w *Worker) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = rw.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !w.Ready() {
			rw.WriteHeader(http.StatusServiceUnavailable)
			_, _ = rw.Write([]byte("not ready\n"))
			return
		}
		_, _ = fmt.Fprintf(rw, "ready generation=%d\n", w.sync.Generation())
	})
	return mux
}

type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Warn(fmt.Sprintf(format, args...), "component", "fasthttp")
}
