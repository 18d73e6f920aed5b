package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/outage"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// leaseScript grants up to want tokens of a sliding-window limit (see the
// package doc). KEYS: the window log, the burst log, the counters hash.
// ARGV: limit, window_us, burst, burst_window_us, want, hold_us, grant id,
// and optionally a previous grant to shrink (its member and how many of its
// tokens went unused: they are taken off the record, which cannot cause
// overshoot since they were never used). It returns {granted, remaining, reset_us}: remaining is what the window
// still allows after the grant, reset_us how long until the oldest grant
// leaves the window that limits (the sooner one frees a token when none is
// left).
var leaseScript = redis.NewScript(`
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local bwindow = tonumber(ARGV[4])
local want = tonumber(ARGV[5])
local hold = tonumber(ARGV[6])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function shrink(z, field, member, kept, unused)
  local sc = redis.call('ZSCORE', z, member)
  if not sc then return end
  redis.call('ZREM', z, member)
  if kept > 0 then
    redis.call('ZADD', z, sc, (string.gsub(member, ':%d+$', ':' .. kept)))
  end
  redis.call('HINCRBY', KEYS[3], field, -unused)
end
if ARGV[8] and ARGV[8] ~= '' then
  local granted = tonumber(string.match(ARGV[8], ':(%d+)$'))
  local unused = tonumber(ARGV[9])
  shrink(KEYS[1], 'w', ARGV[8], granted - unused, unused)
  if burst > 0 then shrink(KEYS[2], 'b', ARGV[8], granted - unused, unused) end
end
local function trim(z, field, w)
  local cut = string.format('%.0f', now - w)
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', cut)
  if #old > 0 then
    local s = 0
    for _, m in ipairs(old) do s = s + tonumber(string.match(m, ':(%d+)$')) end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', cut)
    return tonumber(redis.call('HINCRBY', KEYS[3], field, -s))
  end
  return tonumber(redis.call('HGET', KEYS[3], field) or '0')
end
local function oldest(z, w)
  local o = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  if o[2] then return tonumber(o[2]) + w - now end
  return w
end
local n = trim(KEYS[1], 'w', window)
local grant = math.min(want, limit - n)
local nb = 0
if burst > 0 then
  nb = trim(KEYS[2], 'b', bwindow)
  grant = math.min(grant, burst - nb)
end
if grant < 0 then grant = 0 end
if grant > 0 then
  local score = string.format('%.0f', now + hold)
  local member = ARGV[7] .. ':' .. grant
  redis.call('ZADD', KEYS[1], score, member)
  n = redis.call('HINCRBY', KEYS[3], 'w', grant)
  if burst > 0 then
    redis.call('ZADD', KEYS[2], score, member)
    nb = redis.call('HINCRBY', KEYS[3], 'b', grant)
  end
end
local ttl = math.ceil((window + hold) / 1000) + 1000
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
if burst > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
local reset = oldest(KEYS[1], window)
if grant == 0 and burst > 0 and nb >= burst and n < limit then
  reset = oldest(KEYS[2], bwindow)
end
if reset < 0 then reset = 0 end
return {grant, limit - n, reset}
`)

// Defaults of Options.
const (
	DefaultTimeout     = 100 * time.Millisecond
	DefaultLeaseTarget = 10 * time.Millisecond
	DefaultLeaseTTL    = 25 * time.Millisecond
	// LeaseDivisor caps a lease at limit/LeaseDivisor tokens.
	LeaseDivisor = 16
	// downFor is how long the limiter decides locally after a Redis
	// failure before it tries Redis again.
	downFor = time.Second
)

// Options configure the Redis limiters (rate, quota, concurrency).
type Options struct {
	// Redis holds the shared state; required.
	Redis redis.UniversalClient
	// Keys names the Redis keys.
	Keys proxycfg.Keys
	// Timeout bounds one Redis call; 0 means DefaultTimeout.
	Timeout time.Duration
	// LeaseTarget is how much of a worker's observed traffic a lease
	// covers; 0 means DefaultLeaseTarget. A negative value turns leasing
	// off: one Redis call per request (the naive exact limiter).
	LeaseTarget time.Duration
	// LeaseTTL is how long leased tokens may be used; 0 means
	// DefaultLeaseTTL. It must exceed LeaseTarget.
	LeaseTTL time.Duration
	// Peers counts the live workers, by which limits are divided while
	// Redis is unreachable; nil means 1.
	Peers interface{ Live() int }
	// Degraded counts decisions taken without Redis; nil means a private
	// counter (see Redis.Degraded).
	Degraded *atomic.Int64
	// Logger receives outage transitions; nil discards.
	Logger *slog.Logger
	// Outage receives the outcome of every Redis call and logs outages;
	// nil means a tracker of its own that logs to Logger.
	Outage *outage.Tracker
}

func (o *Options) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.LeaseTarget == 0 {
		o.LeaseTarget = DefaultLeaseTarget
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.LeaseTTL <= o.LeaseTarget {
		o.LeaseTTL = 2 * o.LeaseTarget
	}
	if o.Degraded == nil {
		o.Degraded = new(atomic.Int64)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Outage == nil {
		o.Outage = outage.New(outage.Options{Name: "redis", Logger: o.Logger})
	}
}

// health tracks whether Redis answers; shared by a worker's limiters.
// While it does not, the limiters decide locally (Degraded counts those
// decisions); the outage itself is logged by the tracker, once.
type health struct {
	downUntil atomic.Int64 // mono nanos; > now means skip Redis
	outage    *outage.Tracker
}

func (h *health) skip(now int64) bool { return h.downUntil.Load() > now }

func (h *health) failed(err error) {
	h.downUntil.Store(mono() + int64(downFor))
	h.outage.Fail("ratelimit", err)
}

func (h *health) ok() { h.outage.OK() }

// within runs call and returns its answer, or ctx's error as soon as ctx
// ends, whether or not the Redis client applies context deadlines to its
// socket reads (go-redis does only with ContextTimeoutEnabled): a stalled
// Redis must not hold a request longer than Options.Timeout. An abandoned
// call finishes in the background within the client's own timeouts.
func within[T any](ctx context.Context, call func(context.Context) (T, error)) (T, error) {
	type answer struct {
		v   T
		err error
	}
	done := make(chan answer, 1)
	go func() {
		v, err := call(ctx)
		done <- answer{v, err}
	}()
	select {
	case a := <-done:
		return a.v, a.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

var epoch = time.Now()

// mono is a monotonic clock in nanoseconds.
func mono() int64 { return int64(time.Since(epoch)) }

// monoAt is mono at now, without reading the clock when now carries a
// monotonic reading (a time.Now), else mono().
func monoAt(now time.Time) int64 {
	if now != now.Round(0) {
		return int64(now.Sub(epoch))
	}
	return mono()
}

// Redis is the distributed rate limiter: exact across all workers (no
// interval admits more than the limit) with leased tokens for hot subjects.
// See the package doc for the algorithm and its error bound.
type Redis struct {
	opts     Options
	id       string
	seq      atomic.Uint64
	health   *health
	fallback *Local
	shards   [64]shard
	calls    atomic.Int64
}

type shard struct {
	mu sync.Mutex
	m  map[bucketKey]*bucket
}

type bucketKey struct {
	subject string
	rl      proxycfg.RateLimit
}

// bucket is a worker's view of one subject under one limit.
type bucket struct {
	mu          sync.Mutex
	tokens      int64 // leased, unused
	expires     int64 // mono: leased tokens unusable from then
	deniedUntil int64 // mono: refused locally until then
	remaining   int64 // window's remaining at the last grant
	resetAt     int64 // mono: when the window frees a token (estimate)
	demand      int64 // requests since the last lease
	lastLease   int64 // mono
	rate        float64
	leasing     chan struct{} // closed when the lease call in flight ends
	lastUse     int64
	member      string // Redis member of the current lease ("" for a single token)
}

// NewRedis makes the Redis limiter with default options. fallback is
// ignored unless it is a *Local (kept for compatibility); nil is fine.
func NewRedis(rdb redis.UniversalClient, keys proxycfg.Keys, fallback Limiter, logger *slog.Logger) *Redis {
	r := New(Options{Redis: rdb, Keys: keys, Logger: logger})
	if l, ok := fallback.(*Local); ok && l != nil {
		r.fallback = l
	}
	return r
}

// New makes a Redis limiter.
func New(opts Options) *Redis {
	opts.defaults()
	var b [6]byte
	_, _ = rand.Read(b[:])
	r := &Redis{opts: opts, id: hex.EncodeToString(b[:]), fallback: NewLocal(),
		health: &health{outage: opts.Outage}}
	for i := range r.shards {
		r.shards[i].m = map[bucketKey]*bucket{}
	}
	return r
}

// Degraded is the number of decisions taken without Redis so far.
func (r *Redis) Degraded() int64 { return r.opts.Degraded.Load() }

// Calls is the number of Redis script calls made so far.
func (r *Redis) Calls() int64 { return r.calls.Load() }

func (r *Redis) bucket(subject string, rl proxycfg.RateLimit) *bucket {
	h := fnv(subject)
	s := &r.shards[h%uint32(len(r.shards))]
	k := bucketKey{subject, rl}
	s.mu.Lock()
	b := s.m[k]
	if b == nil {
		if len(s.m) > 4096 {
			sweep(s.m)
		}
		b = &bucket{}
		s.m[k] = b
	}
	s.mu.Unlock()
	return b
}

// sweep drops buckets idle for a minute (holding no usable state).
func sweep(m map[bucketKey]*bucket) {
	cut := mono() - int64(time.Minute)
	for k, b := range m {
		b.mu.Lock()
		idle := b.lastUse < cut && b.leasing == nil
		b.mu.Unlock()
		if idle {
			delete(m, k)
		}
	}
}

func fnv(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// Allow implements Limiter.
func (r *Redis) Allow(ctx context.Context, subject string, rl proxycfg.RateLimit, now time.Time) (Decision, error) {
	b := r.bucket(subject, rl)
	counted := false
	for {
		t := mono()
		b.mu.Lock()
		b.lastUse = t
		if !counted {
			b.demand++
			counted = true
		}
		if b.tokens > 0 && t < b.expires {
			b.tokens--
			d := Decision{Allowed: true, Limit: rl.Requests, Remaining: b.remaining + b.tokens,
				Reset: time.Duration(max(b.resetAt-t, 0))}
			b.mu.Unlock()
			return d, nil
		}
		if t < b.deniedUntil {
			wait := time.Duration(b.deniedUntil - t)
			b.mu.Unlock()
			return Decision{Limit: rl.Requests, RetryAfter: max(wait, time.Second), Reset: wait}, nil
		}
		if ch := b.leasing; ch != nil {
			b.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return Decision{}, fmt.Errorf("rate limit: %w", ctx.Err())
			}
		}
		if r.health.skip(t) {
			b.mu.Unlock()
			return r.degraded(ctx, subject, rl, now)
		}
		want := r.leaseSize(b, t, rl)
		// Tokens of an expired lease that went unused are given back with
		// this call.
		back, unused := b.member, b.tokens
		b.tokens, b.member = 0, ""
		ch := make(chan struct{})
		b.leasing = ch
		b.mu.Unlock()

		granted, member, remaining, reset, err := r.lease(ctx, subject, rl, want, back, unused)

		b.mu.Lock()
		b.leasing = nil
		close(ch)
		if err != nil {
			b.mu.Unlock()
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return Decision{}, fmt.Errorf("rate limit: %w", err)
			}
			r.health.failed(err)
			return r.degraded(ctx, subject, rl, now)
		}
		r.health.ok()
		b.remaining = remaining
		b.resetAt = t + int64(reset)
		if granted == 0 {
			b.deniedUntil = t + int64(reset)
			b.mu.Unlock()
			return Decision{Limit: rl.Requests, RetryAfter: max(reset, time.Second), Reset: reset}, nil
		}
		b.tokens = granted - 1
		b.expires = t + int64(r.opts.LeaseTTL)
		if granted > 1 {
			b.member = member
		}
		d := Decision{Allowed: true, Limit: rl.Requests, Remaining: remaining + b.tokens, Reset: reset}
		b.mu.Unlock()
		return d, nil
	}
}

// leaseSize sizes the next lease from the demand observed since the last
// one (b is locked).
func (r *Redis) leaseSize(b *bucket, t int64, rl proxycfg.RateLimit) int64 {
	if b.lastLease > 0 {
		if el := t - b.lastLease; el > 0 {
			inst := float64(b.demand) / (float64(el) / 1e9)
			if b.rate == 0 {
				b.rate = inst
			} else {
				b.rate = 0.5*b.rate + 0.5*inst
			}
		}
	}
	b.lastLease, b.demand = t, 0
	if r.opts.LeaseTarget < 0 {
		return 1
	}
	limitCap := rl.Requests / LeaseDivisor
	if rl.Burst > 0 {
		limitCap = min(limitCap, rl.Burst/LeaseDivisor)
	}
	want := int64(math.Ceil(b.rate * r.opts.LeaseTarget.Seconds()))
	return max(min(want, limitCap), 1)
}

func (r *Redis) lease(ctx context.Context, subject string, rl proxycfg.RateLimit, want int64, back string, unused int64) (granted int64, member string, remaining int64, reset time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	window := rl.PerSeconds * 1_000_000
	var bwindow int64
	if rl.Burst > 0 {
		bwindow = max(window*rl.Burst/rl.Requests, 1000)
	}
	hold := int64(0)
	if want > 1 {
		hold = r.opts.LeaseTTL.Microseconds()
	}
	base := r.opts.Keys.RateLimit(subject)
	id := r.id + "-" + strconv.FormatUint(r.seq.Add(1), 36)
	r.calls.Add(1)
	if unused <= 0 {
		back = ""
	}
	res, err := within(ctx, func(ctx context.Context) ([]int64, error) {
		return leaseScript.Run(ctx, r.opts.Redis, []string{base, base + ":b", base + ":n"},
			rl.Requests, window, rl.Burst, bwindow, want, hold, id, back, unused).Int64Slice()
	})
	if err == nil && len(res) != 3 {
		err = fmt.Errorf("unexpected script result %v", res)
	}
	if err != nil {
		return 0, "", 0, 0, fmt.Errorf("rate limit script: %w", err)
	}
	return res[0], id + ":" + strconv.FormatInt(res[0], 10), max(res[1], 0), time.Duration(max(res[2], 0)) * time.Microsecond, nil
}

// degraded decides without Redis: the limit divided by the live workers.
func (r *Redis) degraded(ctx context.Context, subject string, rl proxycfg.RateLimit, now time.Time) (Decision, error) {
	r.opts.Degraded.Add(1)
	share := rl
	share.Requests = divideLimit(rl.Requests, r.live())
	if share.Burst > 0 {
		share.Burst = 0
	}
	d, err := r.fallback.Allow(ctx, subject, share, now)
	d.Limit = rl.Requests
	return d, err
}

func (r *Redis) live() int {
	if r.opts.Peers == nil {
		return 1
	}
	return max(r.opts.Peers.Live(), 1)
}

// divideLimit is a worker's share of a limit among n workers, at least 1.
func divideLimit(limit int64, n int) int64 {
	return max(limit/int64(n), 1)
}
