// Package outage follows whether a dependency of the worker (Redis) answers,
// from the outcomes of the calls the worker's components make, and reports
// an outage the way an operator reads it: one log line when it starts, at
// most one a minute while it lasts (with how long, how many calls failed
// and the last error), one when it ends, and how long it has lasted as a
// metric. Without it every component logs every failed call, several times
// a second, for as long as the outage lasts.
//
// go-redis logs on its own as well (pool and pub/sub errors, through a
// process-wide logger); RouteRedisLogs sends those lines to slog with the
// same budget.
package outage

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultEvery is the least time between two log lines of one outage.
const DefaultEvery = time.Minute

// Options configure a Tracker.
type Options struct {
	// Name names the dependency in log lines: "redis".
	Name string
	// Logger receives the outage's lines; nil discards.
	Logger *slog.Logger
	// Every is the least time between two lines; 0 means DefaultEvery.
	Every time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Tracker follows one dependency. Components call Fail after a call that
// failed because the dependency did not answer and OK after one that
// succeeded; OK costs one atomic load while the dependency is up. It is
// safe for concurrent use.
type Tracker struct {
	opts Options
	down atomic.Bool
	// sinceNanos is the start of the current outage (unix nanoseconds),
	// 0 while up; read by the metric without the lock.
	sinceNanos atomic.Int64

	mu          sync.Mutex
	lastLog     time.Time // of any line of this tracker
	failures    int64     // failed calls since the last line
	loggedStart bool      // the current outage was announced
}

// New makes a Tracker of a dependency that is up.
func New(opts Options) *Tracker {
	if opts.Name == "" {
		opts.Name = "dependency"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Every <= 0 {
		opts.Every = DefaultEvery
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Tracker{opts: opts}
}

// Fail records a call of component that failed with err because the
// dependency did not answer. The first failure starts an outage and logs
// it, unless a line was logged less than Every ago (a dependency that
// flaps is logged at most once per Every, not once per flap); later
// failures log at most once per Every.
func (t *Tracker) Fail(component string, err error) {
	if t == nil {
		return
	}
	now := t.opts.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failures++
	quiet := !t.lastLog.IsZero() && now.Sub(t.lastLog) < t.opts.Every
	if !t.down.Load() {
		t.sinceNanos.Store(now.UnixNano())
		t.down.Store(true)
		t.loggedStart = !quiet
		if !quiet {
			t.opts.Logger.Warn(t.opts.Name+" unreachable", "component", component, "err", err)
			t.lastLog, t.failures = now, 0
		}
		return
	}
	if quiet {
		return
	}
	t.opts.Logger.Warn(t.opts.Name+" still unreachable", "for", t.since(now).Round(time.Second),
		"failed_calls", t.failures, "component", component, "err", err)
	t.lastLog, t.failures, t.loggedStart = now, 0, true
}

// OK records a call that succeeded: an outage, if any, is over.
func (t *Tracker) OK() {
	if t == nil || !t.down.Load() {
		return
	}
	now := t.opts.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.down.Load() {
		return
	}
	if t.loggedStart {
		t.opts.Logger.Info(t.opts.Name+" reachable again", "after", t.since(now).Round(time.Millisecond),
			"failed_calls", t.failures)
		t.lastLog = now
	}
	t.failures, t.loggedStart = 0, false
	t.sinceNanos.Store(0)
	t.down.Store(false)
}

func (t *Tracker) since(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, t.sinceNanos.Load()))
}

// Down reports whether the dependency is in an outage.
func (t *Tracker) Down() bool { return t != nil && t.down.Load() }

// DownFor is how long the current outage has lasted; 0 while up. It backs
// the metric tollgate_redis_down_seconds.
func (t *Tracker) DownFor() time.Duration {
	if t == nil {
		return 0
	}
	s := t.sinceNanos.Load()
	if s == 0 {
		return 0
	}
	return max(t.opts.Now().Sub(time.Unix(0, s)), 0)
}

// RouteRedisLogs sends go-redis's own log lines (connection pool and
// pub/sub errors, printed to stderr by default) to logger, at Warn, each
// kind of line at most once per every (0 means DefaultEvery) with the
// number of lines held back since. go-redis has one logger per process
// (redis.SetLogger), so call this once, from main, before clients are
// made; libraries and tests should not.
func RouteRedisLogs(logger *slog.Logger, every time.Duration) {
	redis.SetLogger(NewRedisLogger(logger, every))
}

// RedisLogger is a go-redis logger (redis.SetLogger) that writes to slog
// under a rate limit per format string. Use RouteRedisLogs; it is exported
// for tests and for processes with their own wiring.
type RedisLogger struct {
	logger *slog.Logger
	every  time.Duration
	now    func() time.Time

	mu    sync.Mutex
	kinds map[string]*logKind // by format string
}

type logKind struct {
	last     time.Time
	withheld int
}

// maxKinds bounds the format strings a RedisLogger tracks; go-redis has a
// few dozen.
const maxKinds = 256

// NewRedisLogger makes a RedisLogger; every 0 means DefaultEvery.
func NewRedisLogger(logger *slog.Logger, every time.Duration) *RedisLogger {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if every <= 0 {
		every = DefaultEvery
	}
	return &RedisLogger{logger: logger, every: every, now: time.Now, kinds: map[string]*logKind{}}
}

// Printf implements go-redis's logging interface.
func (l *RedisLogger) Printf(ctx context.Context, format string, v ...any) {
	now := l.now()
	l.mu.Lock()
	k := l.kinds[format]
	if k == nil {
		if len(l.kinds) >= maxKinds {
			clear(l.kinds)
		}
		k = &logKind{}
		l.kinds[format] = k
	}
	if !k.last.IsZero() && now.Sub(k.last) < l.every {
		k.withheld++
		l.mu.Unlock()
		return
	}
	withheld := k.withheld
	k.last, k.withheld = now, 0
	l.mu.Unlock()
	msg := fmt.Sprintf(format, v...)
	if withheld > 0 {
		l.logger.WarnContext(ctx, msg, "component", "go-redis", "similar_lines_withheld", withheld)
		return
	}
	l.logger.WarnContext(ctx, msg, "component", "go-redis")
}
