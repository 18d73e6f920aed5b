// Package worker is a Tollgate data-plane worker: it wires config sync (with
// a last-good snapshot on disk), key and JWT auth, rate limiting, balancing
// with passive and active health, retries and metrics into the pipeline, and
// serves traffic with fasthttp, forwarding over keep-alive HostClients.
//
// Protocols: HTTP/1.1 on the traffic port (fasthttp), with WebSocket
// upgrades spliced to the target and event streams flushed as they arrive
// (stream.go), and request bodies streamed to the target under the API's
// size limit (body.go); HTTP/2 over TLS with per-domain certificates reloaded from
// disk, and cleartext h2c, on optional net/http front listeners that run the
// same handler (front.go). Admin port: /healthz, /readyz and /metrics.
package worker

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/balance"
	"github.com/tollgate/tollgate/proxy/configsync"
	"github.com/tollgate/tollgate/proxy/health"
	"github.com/tollgate/tollgate/proxy/jwtauth"
	"github.com/tollgate/tollgate/proxy/keyauth"
	"github.com/tollgate/tollgate/proxy/metrics"
	"github.com/tollgate/tollgate/proxy/netguard"
	"github.com/tollgate/tollgate/proxy/outage"
	"github.com/tollgate/tollgate/proxy/pipeline"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/tlsstore"
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
	// Secret is TOLLGATE_SECRET. The key API keys are digested with is
	// derived from it as each snapshot's DigestVersion says; required
	// unless DigestKey is set.
	Secret []byte
	// DigestKey, when set (TOLLGATE_DIGEST_KEY), is the key of the API key
	// digests itself: a worker given it needs no secret and ignores the
	// snapshots' DigestVersion.
	DigestKey []byte
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
	// DrainDelay is how long the worker keeps accepting connections after
	// ctx is cancelled while /readyz already answers 503, so that a load
	// balancer stops sending before the listener closes; 0 means none.
	DrainDelay time.Duration
	// SnapshotFile keeps the last good snapshot on local disk: it is
	// written after every swap and loaded at start when Redis has none to
	// give, so a worker restarted while Redis is down still serves. The
	// product keeps it by default: the proxy command passes
	// configsync.DefaultSnapshotPath(redisURL, prefix), a file per Redis
	// deployment and key prefix in the state directory, unless the
	// operator names another file or "off". Here "" and "off"
	// (configsync.SnapshotOff) keep nothing on disk, so that tests and
	// embedders never write into the machine's state directory unasked.
	SnapshotFile string
	// TrustedProxies are the client address ranges whose X-Forwarded-*
	// and Forwarded headers are kept (appended to); from anyone else they
	// are replaced. Empty trusts no one.
	TrustedProxies []netip.Prefix
	// MaxConcurrent caps the requests served at once; beyond it requests
	// are shed with 503 and Retry-After. 0 means no cap.
	MaxConcurrent int
	// MaxHeaderBytes bounds a request's header block (431 beyond); 0
	// means 16 KiB.
	MaxHeaderBytes int
	// MaxBodyBytes bounds request bodies of every API (413 beyond); APIs
	// may set less. 0 means 32 MiB. Bodies are streamed to the upstream,
	// not held in memory, whatever this limit (body.go).
	MaxBodyBytes int
	// ReadTimeout bounds reading a request (headers and body) from a
	// client, against slow clients; 0 means 60s.
	ReadTimeout time.Duration
	// IdleTimeout closes keep-alive client connections idle this long; 0
	// means 60s.
	IdleTimeout time.Duration
	// AccessLog, if set, receives one JSON-ready record per request,
	// written asynchronously.
	AccessLog *slog.Logger
	// AccessLogSample is the share of successful requests logged (errors
	// always are); 0 means all.
	AccessLogSample float64
	// Metrics, if set, is where the worker registers its metrics; nil
	// makes a new registry (see Worker.Metrics).
	Metrics *metrics.Metrics
	// SecureListener, if set, serves HTTPS (HTTP/2 and HTTP/1.1 by ALPN)
	// with Certificates, which is then required.
	SecureListener net.Listener
	// Certificates pick the TLS certificate by server name; they are
	// rescanned while the worker runs (tlsstore.Store.Run).
	Certificates *tlsstore.Store
	// H2CListener, if set, serves cleartext HTTP/2 (h2c, prior knowledge)
	// and HTTP/1.1.
	H2CListener net.Listener
	// RateLimitTimeout bounds one Redis call of the rate limiters; past it
	// they decide locally for a second. 0 means 100 ms.
	RateLimitTimeout time.Duration
	// RateLimitLeaseTarget is how much of this worker's traffic of a hot
	// subject one lease of tokens covers; 0 means 10 ms, negative turns
	// leasing off (one Redis call per limited request).
	RateLimitLeaseTarget time.Duration
	// MeterInterval is how often usage is shipped to Redis (the most a
	// SIGKILL loses); 0 means 1s.
	MeterInterval time.Duration
	// DisableMetering turns usage metering off (benchmarks).
	DisableMetering bool
	// KeyMaxStale is how long past its cache TTL a key record keeps
	// answering while Redis cannot be asked (keyauth.Options.MaxStale);
	// beyond it the key gets 503. 0 means 15 minutes, negative means not
	// at all.
	KeyMaxStale time.Duration
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

	statsMu sync.Mutex
	stats   map[[2]string]*balance.Stats // by upstream key and target URL

	idPrefix [16]byte // hex of random bytes, prefix of generated request ids
	idSeq    atomic.Uint64
	spanSalt uint64

	jwt   *jwtauth.Verifier
	redis *outage.Tracker // whether Redis answers; logs outages once

	snapshotFile string // the last good snapshot on disk; "" for none
	metrics      *metrics.Metrics
	unrouted     *metrics.APIMetrics
	access       *accessLog
	inflight     atomic.Int64

	thr throttling
}

// New makes a Worker. It does not touch the network; Serve does.
func New(opts Options) (*Worker, error) {
	if opts.Redis == nil {
		return nil, errors.New("worker: nil redis client")
	}
	if opts.SecureListener != nil && opts.Certificates == nil {
		return nil, errors.New("worker: a secure listener needs Certificates")
	}
	if len(opts.Secret) == 0 && len(opts.DigestKey) == 0 {
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
	w.spanSalt = binary.LittleEndian.Uint64(rb[:]) * 0x9e3779b97f4a7c15
	if opts.MaxHeaderBytes <= 0 {
		w.opts.MaxHeaderBytes = 16 << 10
	}
	if opts.MaxBodyBytes <= 0 {
		w.opts.MaxBodyBytes = 32 << 20
	}
	if opts.ReadTimeout <= 0 {
		w.opts.ReadTimeout = 60 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		w.opts.IdleTimeout = 60 * time.Second
	}
	// Every component reports its Redis calls to one tracker, so that an
	// outage is logged once when it starts, at most once a minute while it
	// lasts and once when it ends, whichever components notice it.
	w.redis = outage.New(outage.Options{Name: "redis", Logger: opts.Logger})
	w.metrics = opts.Metrics
	if w.metrics == nil {
		w.metrics = metrics.New(metrics.Sources{
			Generation: w.Generation,
			ConfigAge:  w.configAge,
			Targets:    w.targetStates,
			InFlight:   w.inflight.Load,
			RedisDown:  w.redis.DownFor,
		})
	}
	w.unrouted = w.metrics.API("", "")
	w.jwt = jwtauth.New(jwtauth.Options{
		HTTPClient: &http.Client{
			Timeout:   jwtauth.DefaultTimeout,
			Transport: &http.Transport{DialContext: w.dialer.DialContext, MaxIdleConnsPerHost: 2, IdleConnTimeout: 90 * time.Second},
		},
		Logger: opts.Logger.With("component", "jwtauth"),
	})
	if opts.AccessLog != nil {
		w.access = newAccessLog(opts.AccessLog, opts.AccessLogSample)
	}
	w.health = health.New(w.dialer, opts.Logger.With("component", "health"))
	keys, err := keyauth.New(keyauth.Options{
		Redis:    opts.Redis,
		Keys:     opts.Keys,
		Secret:   initialDigestKey(opts),
		MaxStale: opts.KeyMaxStale,
		Logger:   opts.Logger.With("component", "keyauth"),
		Outage:   w.redis,
	})
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	w.keys = keys
	w.pipe = pipeline.Pipeline{Keys: keys}
	if err := w.setupThrottling(); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	cacheFile := opts.SnapshotFile
	if cacheFile == configsync.SnapshotOff {
		cacheFile = ""
	}
	w.snapshotFile = cacheFile
	w.sync, err = configsync.New(configsync.Options[pipeline.Runtime]{
		Redis:        opts.Redis,
		Keys:         opts.Keys,
		Build:        w.build,
		Swapped:      w.swapped,
		PollInterval: opts.PollInterval,
		Logger:       opts.Logger.With("component", "configsync"),
		CacheFile:    cacheFile,
		Rejected:     func(int64, error) { w.metrics.ConfigRejected() },
		Outage:       w.redis,
	})
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	return w, nil
}

// SnapshotFile is where the worker keeps its last good snapshot ("" for
// nowhere).
func (w *Worker) SnapshotFile() string { return w.snapshotFile }

// Ready reports whether the worker serves traffic: it has a good snapshot
// and is not shutting down.
func (w *Worker) Ready() bool { return w.sync.Ready() && !w.draining.Load() }

// Generation is the generation of the live config (0 before the first).
func (w *Worker) Generation() int64 { return w.sync.Generation() }

// Metrics are the worker's metrics; register more collectors in
// Metrics().Registry.
func (w *Worker) Metrics() *metrics.Metrics { return w.metrics }

func (w *Worker) build(snap *proxycfg.Snapshot) (*pipeline.Runtime, error) {
	if len(w.opts.DigestKey) == 0 {
		// The installation's digest key, from the secret: before the
		// runtime goes live, so that no request is checked with the wrong
		// key. It is the same for every snapshot of an installation.
		k, err := proxycfg.DigestKey(w.opts.Secret, snap.DigestVersion)
		if err != nil {
			return nil, err
		}
		w.keys.SetKey(k)
	}
	return pipeline.Build(snap, pipeline.BuildOptions{
		Domain:    w.opts.Domain,
		Health:    w.health,
		Attach:    w.attach,
		AttachAPI: w.attachAPI,
		JWT:       w.jwt,
		Metrics:   w.metrics,
		Logger:    w.logger.With("component", "balance"),
		Stats:     w.targetStats,
	})
}

// targetStats returns the balancer counters of a target, shared by the
// pools of successive configs.
func (w *Worker) targetStats(upstreamKey, url string) *balance.Stats {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	if w.stats == nil {
		w.stats = map[[2]string]*balance.Stats{}
	}
	k := [2]string{upstreamKey, url}
	s := w.stats[k]
	if s == nil {
		s = new(balance.Stats)
		w.stats[k] = s
	}
	return s
}

// configAge is the time since the live snapshot was compiled.
func (w *Worker) configAge() time.Duration {
	rt := w.sync.Load()
	if rt == nil || rt.CompiledAt.IsZero() {
		return 0
	}
	return time.Since(rt.CompiledAt)
}

// targetStates lists every target of the live config for metrics.
func (w *Worker) targetStates(yield func(tenant, upstream, target string, up bool)) {
	rt := w.sync.Load()
	if rt == nil {
		return
	}
	for _, u := range rt.Upstreams() {
		for i, t := range u.Targets {
			yield(u.TenantSlug, u.ID, t.URL, u.Pool.Available(i))
		}
	}
}

// attach gives a target its HostClient, reusing the one of an unchanged
// address so that keep-alive connections survive reloads.
func (w *Worker) attach(t *pipeline.Target) {
	key := t.Scheme + "://" + t.Host
	w.clientsMu.Lock()
	defer w.clientsMu.Unlock()
	t.Handle = w.hostClient(key, t, 0, 0)
}

// attachAPI gives an API with its own timeouts HostClients of its own
// (one per target and timeout pair; they are shared by APIs alike).
func (w *Worker) attachAPI(api *pipeline.API) {
	w.clientsMu.Lock()
	defer w.clientsMu.Unlock()
	api.Handles = make([]any, len(api.Targets))
	for i, t := range api.Targets {
		key := t.Scheme + "://" + t.Host + "|" + api.ConnectTimeout.String() + "|" + api.ReadTimeout.String()
		api.Handles[i] = w.hostClient(key, t, api.ConnectTimeout, api.ReadTimeout)
	}
}

// hostClient returns the client under key, making it; clientsMu is held.
func (w *Worker) hostClient(key string, t *pipeline.Target, connect, read time.Duration) *fasthttp.HostClient {
	if c := w.clients[key]; c != nil {
		return c
	}
	dial := w.dialer.DialTimeout
	if connect > 0 {
		dial = func(addr string, timeout time.Duration) (net.Conn, error) {
			return w.dialer.DialTimeout(addr, min(timeout, connect))
		}
	}
	c := &fasthttp.HostClient{
		Addr:                     t.Host,
		Name:                     "tollgate",
		IsTLS:                    t.Scheme == "https",
		DialTimeout:              dial,
		MaxConns:                 4096,
		MaxConnWaitTimeout:       5 * time.Second,
		MaxIdleConnDuration:      60 * time.Second,
		NoDefaultUserAgentHeader: true,
		// The request line carries the client's path in normal form
		// (router.CleanPath), not fasthttp's decoded rewrite of it.
		DisablePathNormalizing: true,
		ReadBufferSize:         16 << 10,
		ReadTimeout:            read,
	}
	w.clients[key] = c
	return c
}

// swapped runs after a new runtime went live: health checks follow it and
// HostClients of addresses no longer used are closed.
func (w *Worker) swapped(_, cur *pipeline.Runtime) {
	ups := cur.HealthUpstreams()
	w.health.Sync(w.bg, ups)
	w.statsMu.Lock()
	live := map[[2]string]bool{}
	for _, u := range ups {
		for _, t := range u.Targets {
			live[[2]string{u.Key, t}] = true
		}
	}
	for k := range w.stats {
		if !live[k] {
			delete(w.stats, k)
		}
	}
	w.statsMu.Unlock()
	w.metrics.ConfigSwapped()
	if n := w.jwt.Prune(cur.JWTIssuers()); n > 0 {
		w.logger.Info("jwt issuers of removed apis dropped", "issuers", n)
	}
	go cur.WarmJWT(w.bg)
	w.clientsMu.Lock()
	defer w.clientsMu.Unlock()
	used := map[string]bool{}
	cur.EachTarget(func(t *pipeline.Target) { used[t.Scheme+"://"+t.Host] = true })
	for k, c := range w.clients {
		if base, _, _ := strings.Cut(k, "|"); !used[base] {
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
	w.runThrottling(bg, &loops)
	w.runHealthReport(bg, &loops)
	defer func() {
		stopBG()
		loops.Wait()
		w.health.Close()
		if w.access != nil {
			w.access.close()
		}
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
		ReadTimeout:           w.opts.ReadTimeout,
		IdleTimeout:           w.opts.IdleTimeout,
		// Bodies stream to the upstream (body.go); the handler applies
		// the API's limit, MaxRequestBodySize only bounds what the engine
		// reads ahead of the handler.
		StreamRequestBody:  true,
		MaxRequestBodySize: w.opts.MaxBodyBytes,
		// The read buffer bounds the request line and headers: a larger
		// header block is answered 431.
		ReadBufferSize:  w.opts.MaxHeaderBytes,
		ErrorHandler:    engineError,
		CloseOnShutdown: true,
		Logger:          fasthttpLogger{w.logger},
	}
	adminSrv := &http.Server{Handler: w.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	var frontSrvs []*http.Server

	errc := make(chan error, 4)
	if l := w.opts.SecureListener; l != nil {
		if err := w.opts.Certificates.Load(); err != nil {
			w.logger.Warn("tls certificates not loaded", "err", err)
		}
		fs := w.frontServer(true)
		frontSrvs = append(frontSrvs, fs)
		loops.Go(func() { w.opts.Certificates.Run(bg) })
		go func() {
			if err := fs.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve tls: %w", err)
			}
		}()
	}
	if l := w.opts.H2CListener; l != nil {
		fs := w.frontServer(false)
		frontSrvs = append(frontSrvs, fs)
		go func() {
			if err := fs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve h2c: %w", err)
			}
		}()
	}
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
	if d := w.opts.DrainDelay; d > 0 && serveErr == nil {
		w.logger.Info("proxy worker draining: not ready, still accepting", "for", d)
		time.Sleep(d)
	}
	w.logger.Info("proxy worker shutting down", "timeout", w.opts.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), w.opts.ShutdownTimeout)
	defer cancel()
	var fronts sync.WaitGroup
	for _, fs := range frontSrvs {
		fronts.Go(func() {
			if err := fs.Shutdown(sctx); err != nil {
				w.logger.Warn("front shutdown incomplete", "err", err)
				_ = fs.Close()
			}
		})
	}
	if err := srv.ShutdownWithContext(sctx); err != nil {
		w.logger.Warn("traffic shutdown incomplete", "err", err)
	}
	fronts.Wait()
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
	mux.Handle("GET /metrics", w.metrics.Handler())
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

// initialDigestKey is the digest key before the first snapshot says which
// one the installation uses.
func initialDigestKey(opts Options) []byte {
	if len(opts.DigestKey) > 0 {
		return opts.DigestKey
	}
	return opts.Secret
}
