package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// slidingLog is an exact sliding-window log. Timestamps (microseconds of the
// Redis clock, so that all workers agree) are kept in a ZSET; a request is
// admitted if fewer than limit entries lie in (now-window, now]. It returns
// {allowed, remaining, reset_us}: reset_us is when the oldest entry leaves
// the window.
var slidingLog = redis.NewScript(`
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%.0f', now - window))
local count = redis.call('ZCARD', key)
local allowed = 0
if count < limit then
  redis.call('ZADD', key, string.format('%.0f', now), string.format('%.0f', now) .. '-' .. ARGV[3])
  count = count + 1
  allowed = 1
end
redis.call('PEXPIRE', key, math.ceil(window / 1000) + 1000)
local reset = window
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
if oldest[2] then
  reset = tonumber(oldest[2]) + window - now
end
local remaining = limit - count
if remaining < 0 then remaining = 0 end
return {allowed, remaining, reset}
`)

// Redis is the exact limiter: one atomic script per request, so that across
// all workers together no window of rl.PerSeconds admits more than
// rl.Requests. When Redis fails it falls back to Fallback for that request
// and logs once per outage.
type Redis struct {
	rdb      redis.UniversalClient
	keys     proxycfg.Keys
	fallback Limiter
	logger   *slog.Logger
	id       string
	seq      atomic.Uint64
	down     atomic.Bool
}

// NewRedis makes the Redis limiter. fallback answers while Redis fails; nil
// means a new Local.
func NewRedis(rdb redis.UniversalClient, keys proxycfg.Keys, fallback Limiter, logger *slog.Logger) *Redis {
	if fallback == nil {
		fallback = NewLocal()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &Redis{rdb: rdb, keys: keys, fallback: fallback, logger: logger, id: hex.EncodeToString(b[:])}
}

// Allow implements Limiter.
func (r *Redis) Allow(ctx context.Context, subject string, rl proxycfg.RateLimit, now time.Time) (Decision, error) {
	window := rl.PerSeconds * 1_000_000
	member := r.id + "-" + strconv.FormatUint(r.seq.Add(1), 36)
	res, err := slidingLog.Run(ctx, r.rdb, []string{r.keys.RateLimit(subject)}, rl.Requests, window, member).Int64Slice()
	if err == nil && len(res) != 3 {
		err = fmt.Errorf("unexpected script result %v", res)
	}
	if err != nil {
		if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
			if !r.down.Swap(true) {
				r.logger.Error("rate limiter falls back to in-process counting", "err", err)
			}
		}
		return r.fallback.Allow(ctx, subject, rl, now)
	}
	if r.down.Swap(false) {
		r.logger.Info("rate limiter back on redis")
	}
	d := Decision{
		Allowed:   res[0] == 1,
		Limit:     rl.Requests,
		Remaining: res[1],
		Reset:     time.Duration(max(res[2], 0)) * time.Microsecond,
	}
	if !d.Allowed {
		d.RetryAfter = max(d.Reset, time.Second)
	}
	return d, nil
}
