package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/tollgate/tollgate/billing/metering"
	"github.com/tollgate/tollgate/services/ctlmetrics"
	"github.com/tollgate/tollgate/services/publish"
	"github.com/tollgate/tollgate/services/store"
	usagesvc "github.com/tollgate/tollgate/services/usage"
)

// The metrics are the publisher's and the aggregator's observers.
var (
	_ publish.Observer            = (*ctlmetrics.PublisherMetrics)(nil)
	_ usagesvc.AggregatorObserver = (*ctlmetrics.UsageMetrics)(nil)
)

// newControlMetrics builds the control plane's metrics over its pools,
// the usage stream and the Postgres monitor.
func newControlMetrics(d controlDeps, dbWatch *store.Monitor) *ctlmetrics.Metrics {
	return ctlmetrics.New(ctlmetrics.Options{DB: d.DB, Redis: d.Redis, Keys: d.Keys, PostgresDown: dbWatch.DownSince,
		Logger: d.Logger.With("component", "metrics")})
}

// watchBilling adds billing's counters to the metrics: the webhook's
// receipts and the meter reports meters' sender marked.
func watchBilling(d controlDeps, meters *metering.Runner) {
	if err := d.Metrics.WatchWebhooks(d.Billing.Stats.Snapshot); err != nil {
		d.Logger.Warn("webhook metrics", "err", err)
	}
	if err := d.Metrics.WatchMeterReports(meters.Sender().Stats().Snapshot); err != nil {
		d.Logger.Warn("meter report metrics", "err", err)
	}
}

// controlSurface names the part of the control plane a request on its
// public port is for (the developer portals' hosts are told apart before,
// by hostRouter); portal says whether the tenant portal is mounted at "/".
func controlSurface(portal bool) func(*http.Request) string {
	return func(r *http.Request) string {
		p := r.URL.Path
		switch {
		case p == "/v1" || strings.HasPrefix(p, "/v1/"):
			return ctlmetrics.SurfaceV1
		case strings.HasPrefix(p, "/webhooks/"):
			return ctlmetrics.SurfaceWebhook
		case p == "/healthz" || strings.HasPrefix(p, "/billing/subscriptions/") || !portal:
			return ctlmetrics.SurfaceOther
		}
		return ctlmetrics.SurfacePortal
	}
}

// controlAdmin is the control plane's operator port
// (TOLLGATE_CONTROL_ADMIN_ADDR): /metrics; /healthz, 200 while the process
// serves (liveness); /readyz, 200 while Postgres and Redis answer
// (readiness: without Postgres every request would answer 503).
func controlAdmin(d controlDeps) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", d.Metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		var down []string
		if err := d.DB.Ping(ctx); err != nil {
			down = append(down, "postgres")
		}
		if err := d.Redis.Ping(ctx).Err(); err != nil {
			down = append(down, "redis")
		}
		if len(down) > 0 {
			http.Error(w, "unreachable: "+strings.Join(down, ", "), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// adminServer is the HTTP server of the operator port: small answers only.
func adminServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       controlIdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
