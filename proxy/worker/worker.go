// Package worker is a Tollgate data-plane worker: it wires config sync (with
// a last-good snapshot on disk), key and JWT auth, rate limiting, quotas,
// balancing with passive and active health, retries, metering and metrics
// into the pipeline (proxy/pipeline), and serves traffic with the engine
// (proxy/worker/engine) over fasthttp.
//
// Files, by concern:
//
//   - worker.go: Options, New and Serve: the worker's lifecycle (listeners,
//     background loops, graceful shutdown) and its admin port (/healthz,
//     /readyz, /metrics, and /debug/pprof/ when Options.Pprof is set).
//   - provision.go: provisioning. A snapshot is built into a runtime (the
//     pipeline's compiled config plus the engine's upstream clients for
//     it) without touching live state, swapped in whole, and the runtime
//     it replaces is retired (clients it alone held close their
//     connections; metric series, health checks and JWT issuers follow
//     the live config).
//   - handler.go: HandleFastHTTP, one request's way through: read it,
//     decide (pipeline), forward or answer a problem (engine), observe;
//     one deferred Decision.Done releases what the pipeline took.
//   - observe.go: what is recorded of every answered request: metrics,
//     usage metering, the access log entry; request ids and trace
//     context; the in-flight count.
//   - front.go: the net/http servers of the HTTP/2 and TLS fronts;
//     h2guard.go and h2preface.go: what makes them pass h2spec where Go's
//     HTTP/2 server departs from RFC 9113 (bench/h2spec.sh).
//   - throttle.go: the rate limiters, quotas, concurrency limits and the
//     meter, and their background loops.
//   - accesslog.go, healthreport.go: the access log writer and the target
//     health reports to Redis.
//
// Protocols: HTTP/1.1 on the traffic port (fasthttp), with WebSocket
// upgrades spliced to http and https targets and responses streamed when
// the response says so (engine/stream.go), and request bodies streamed to
// the target under the API's size limit (engine/body.go); HTTP/2 over TLS
// with per-domain certificates reloaded from disk, and cleartext h2c, on
// optional net/http front listeners that run the same handler (front.go,
// engine/front.go).
package worker

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

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
	"github.com/tollgate/tollgate/proxy/tracing"
	"github.com/tollgate/tollgate/proxy/worker/engine"
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
	// PollInterval is how often the config index is polled; 0 means 1s.
	PollInterval time.Duration
	// Capability is the contract's capability version the worker speaks
	// and reports (proxycfg.CapabilityVersion when 0): it serves no shard
	// that needs more. Tests set less to play an older worker of a mixed
	// fleet.
	Capability int
	// ShutdownTimeout bounds how long in-flight requests may finish after
	// ctx is cancelled; 0 means 30s.
	ShutdownTimeout time.Duration
	// DrainDelay is how long the worker keeps accepting connections after
	// ctx is cancelled while /readyz already answers 503, so that a load
	// balancer stops sending before the listener closes; 0 means none.
	DrainDelay time.Duration
	// SnapshotFile keeps the last good config (every tenant's shard) on
	// local disk: it is appended to after every change and loaded at
	// start, so a worker restarted while Redis is down still serves. The
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
	// UpstreamTLS configures TLS to https targets (requests and WebSocket
	// upgrades); ServerName is set per target. nil verifies targets
	// against the system's roots; tests set RootCAs to trust their
	// httptest servers, operators to trust a private CA.
	UpstreamTLS *tls.Config
	// Tracer, if set, traces requests (proxy/tracing): a server span per
	// sampled request from its arrival to its answer, a client span for the
	// exchange with the upstream, and the W3C traceparent carried on to the
	// upstream. nil is tracing off: a client's traceparent is passed on as
	// it is (a missing or malformed one is replaced by a new one).
	Tracer *tracing.Tracer
	// MetricsMaxAPIs is how many APIs, and how many upstreams, get
	// metrics series of their own (metrics.DefaultMaxAPIs when 0;
	// negative: none); the rest count under "~other". Ignored when
	// Metrics is set.
	MetricsMaxAPIs int
	// Pprof serves net/http/pprof under /debug/pprof/ on the admin port
	// (TOLLGATE_PROXY_PPROF), so that a live worker can be profiled. Off
	// by default: profiles expose internals and cost CPU while taken.
	Pprof bool
}

// Worker is one proxy worker. Create it with New and run it with Serve.
type Worker struct {
	opts     Options
	logger   *slog.Logger
	dialer   *netguard.Dialer
	health   *health.Checker
	keys     *keyauth.Store
	pipe     pipeline.Pipeline
	engine   *engine.Engine
	sync     *configsync.Syncer[provisioned]
	composer *pipeline.Composer // builds the runtimes sync swaps in (its goroutine only)
	draining atomic.Bool
	served   atomic.Bool

	bg context.Context // lives until Serve's shutdown ends; health checks use it

	idPrefix [16]byte // hex of random bytes, prefix of generated request ids
	idSeq    atomic.Uint64
	spanSalt uint64

	jwt   *jwtauth.Verifier
	redis *outage.Tracker // whether Redis answers; logs outages once

	snapshotFile string // the last good snapshot on disk; "" for none
	metrics      *metrics.Metrics
	ownMetrics   bool // metrics made by New (not shared): pruned to the live config
	// dirty is what the health reporter must read again (healthDirt).
	dirty    healthDirt
	unrouted *metrics.APIMetrics
	access   *accessLog
	inflight inflight

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
		opts:   opts,
		logger: opts.Logger,
		dialer: &netguard.Dialer{AllowPrivate: opts.AllowPrivateUpstreams},
		bg:     context.Background(),
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
		w.ownMetrics = true
		w.metrics = metrics.New(metrics.Sources{
			Generation: w.Generation,
			ConfigAge:  w.configAge,
			Targets:    w.targetStates,
			InFlight:   w.inflight.Load,
			RedisDown:  w.redis.DownFor,
			MaxAPIs:    opts.MetricsMaxAPIs,
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
	w.engine = engine.New(engine.Options{
		Dialer:         w.dialer,
		UpstreamTLS:    opts.UpstreamTLS,
		TrustedProxies: opts.TrustedProxies,
		MaxBodyBytes:   w.opts.MaxBodyBytes,
		Logger:         opts.Logger.With("component", "engine"),
	})
	w.health = health.New(w.dialer, opts.Logger.With("component", "health"))
	w.health.OnReport(func(upstreamKey string) {
		tenant, _, _ := strings.Cut(upstreamKey, "/")
		w.dirty.mark(tenant)
	})
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
	w.composer = pipeline.NewComposer(pipeline.BuildOptions{
		Domain:  w.opts.Domain,
		Health:  w.health,
		JWT:     w.jwt,
		Metrics: w.metrics,
		Logger:  w.logger.With("component", "balance"),
		OnEject: w.dirty.ejected,
	})
	w.sync, err = configsync.New(configsync.Options[provisioned]{
		Redis:        opts.Redis,
		Keys:         opts.Keys,
		Apply:        w.apply,
		Swapped:      w.swapped,
		Capability:   opts.Capability,
		WorkerID:     w.thr.id,
		PollInterval: opts.PollInterval,
		Logger:       opts.Logger.With("component", "configsync"),
		CacheFile:    cacheFile,
		Rejected:     func(string, int64, error) { w.metrics.ConfigRejected() },
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

// Ready reports whether the worker serves traffic: it has a config and is
// not shutting down.
func (w *Worker) Ready() bool { return w.sync.Ready() && !w.draining.Load() }

// Generation is the config index sequence of the live config (0 before the
// first).
func (w *Worker) Generation() int64 { return w.sync.Generation() }

// Metrics are the worker's metrics; register more collectors in
// Metrics().Registry.
func (w *Worker) Metrics() *metrics.Metrics { return w.metrics }

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
		if rt := w.sync.Load(); rt != nil {
			rt.transports.Retire(nil)
		}
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
		ErrorHandler:    engine.ServerError,
		CloseOnShutdown: true,
		Logger:          engine.Logger{L: w.logger},
		// The traffic listener's connections wait for the client's next
		// request when they write an answer (engine/nextwait.go); they
		// must know the write buffer's size.
		WriteBufferSize: engine.WriteBufferSize,
	}
	trafficLn := engine.NewNextWaitListener(traffic)
	defer trafficLn.Stop()
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
			if err := fs.Serve(h2cListener{l}); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve h2c: %w", err)
			}
		}()
	}
	go func() {
		if err := srv.Serve(trafficLn); err != nil {
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
	if w.opts.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
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

// initialDigestKey is the digest key before the first snapshot says which
// one the installation uses.
func initialDigestKey(opts Options) []byte {
	if len(opts.DigestKey) > 0 {
		return opts.DigestKey
	}
	return opts.Secret
}
