package worker

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/pipeline"
)

// accessLogQueue bounds the entries waiting to be written; beyond it entries
// are dropped (and counted) rather than slowing traffic down.
const accessLogQueue = 8192

// accessEntry is one access log line, copied out of the request so that
// the writer goroutine does not touch recycled fasthttp buffers.
type accessEntry struct {
	time      time.Time
	method    string
	host      string
	path      string
	status    int
	duration  time.Duration
	bytesIn   int64
	bytesOut  int
	requestID string
	tenant    string
	api       string
	consumer  string
	keyID     string
	target    string
	remote    string
}

// accessLog writes JSON access logs with slog from a background goroutine:
// the request path only copies a few strings into a bounded queue. sample
// is the share of successful (< 400) requests logged; errors are always
// logged.
type accessLog struct {
	logger  *slog.Logger
	sample  float64
	queue   chan accessEntry
	dropped atomic.Int64
	done    chan struct{}
	once    sync.Once
}

func newAccessLog(l *slog.Logger, sample float64) *accessLog {
	if sample <= 0 || sample > 1 {
		sample = 1
	}
	a := &accessLog{logger: l, sample: sample, queue: make(chan accessEntry, accessLogQueue), done: make(chan struct{})}
	go a.run()
	return a
}

func (a *accessLog) log(ctx *fasthttp.RequestCtx, d *pipeline.Decision, status int, elapsed time.Duration, reqID []byte, bytesIn int64) {
	if status < 400 && a.sample < 1 && rand.Float64() >= a.sample {
		return
	}
	e := accessEntry{
		time:      ctx.Time(),
		method:    string(ctx.Method()),
		host:      string(ctx.Host()),
		path:      string(ctx.Path()),
		status:    status,
		duration:  elapsed,
		bytesIn:   bytesIn,
		bytesOut:  responseBodyLen(&ctx.Response),
		requestID: string(reqID),
		remote:    ctx.RemoteIP().String(),
	}
	if d.API != nil {
		e.tenant, e.api = d.API.TenantID, d.API.Config.ID
	}
	if d.Key != nil {
		e.consumer, e.keyID = d.Key.ConsumerID, d.Key.ID
	}
	if d.Target != nil {
		e.target = d.Target.URL
	}
	select {
	case a.queue <- e:
	default:
		a.dropped.Add(1)
	}
}

func (a *accessLog) run() {
	defer close(a.done)
	ctx := context.Background()
	for e := range a.queue {
		a.logger.LogAttrs(ctx, slog.LevelInfo, "access",
			slog.Time("ts", e.time),
			slog.String("method", e.method),
			slog.String("host", e.host),
			slog.String("path", e.path),
			slog.Int("status", e.status),
			slog.Float64("duration_ms", float64(e.duration.Microseconds())/1000),
			slog.Int64("bytes_in", e.bytesIn),
			slog.Int("bytes_out", e.bytesOut),
			slog.String("request_id", e.requestID),
			slog.String("tenant_id", e.tenant),
			slog.String("api_id", e.api),
			slog.String("consumer_id", e.consumer),
			slog.String("key_id", e.keyID),
			slog.String("target", e.target),
			slog.String("remote", e.remote),
		)
	}
}

// close flushes the queue and stops the writer; no log call may follow.
func (a *accessLog) close() {
	a.once.Do(func() {
		close(a.queue)
		<-a.done
		if n := a.dropped.Load(); n > 0 {
			a.logger.Warn("access log entries dropped (queue full)", "dropped", n)
		}
	})
}
