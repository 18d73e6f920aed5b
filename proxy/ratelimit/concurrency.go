package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// acquireScript takes a concurrency slot: it drops slots whose holders'
// deadlines passed (a crashed worker's), and adds ARGV[3] with deadline
// ARGV[2] (Unix ms) if fewer than ARGV[1] are held. It returns {ok, held}.
var acquireScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if held >= tonumber(ARGV[1]) then return {0, held} end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 1000)
return {1, held + 1}
`)

// Slot is a held concurrency slot; the zero Slot holds nothing. Release it
// exactly once when the request ends.
type Slot struct {
	c       *Concurrency
	subject string
	member  string
	local   bool
}

// Concurrency limits requests in flight per subject across all workers
// (see the package doc). Releases are batched by a background loop (Run).
type Concurrency struct {
	r       *Redis
	release chan Slot
	mu      sync.Mutex
	local   map[string]int64 // in flight per subject, decided without Redis
}

// Concurrency returns the concurrency limiter sharing r's Redis, options
// and health. Its Run must be running for releases to reach Redis.
func (r *Redis) Concurrency() *Concurrency {
	return &Concurrency{r: r, release: make(chan Slot, 4096), local: map[string]int64{}}
}

// Acquire takes a slot of subject if fewer than limit are held. hold bounds
// how long the slot counts if it is never released (the request's timeout
// plus a margin). ok false means the limit is reached.
func (c *Concurrency) Acquire(ctx context.Context, subject string, limit int64, hold time.Duration) (Slot, bool, error) {
	r := c.r
	if !r.health.skip(mono()) {
		member := r.id + "-" + strconv.FormatUint(r.seq.Add(1), 36)
		cctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
		r.calls.Add(1)
		res, err := within(cctx, func(ctx context.Context) ([]int64, error) {
			return acquireScript.Run(ctx, r.opts.Redis, []string{r.opts.Keys.RateLimit(subject) + ":inflight"},
				limit, hold.Milliseconds()+1000, member).Int64Slice()
		})
		cancel()
		if err == nil && len(res) == 2 {
			r.health.ok()
			if res[0] == 1 {
				return Slot{c: c, subject: subject, member: member}, true, nil
			}
			return Slot{}, false, nil
		}
		if err == nil {
			err = fmt.Errorf("unexpected script result %v", res)
		}
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return Slot{}, false, fmt.Errorf("concurrency: %w", err)
		}
		r.health.failed(err)
	}
	r.opts.Degraded.Add(1)
	share := divideLimit(limit, r.live())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.local[subject] >= share {
		return Slot{}, false, nil
	}
	c.local[subject]++
	return Slot{c: c, subject: subject, local: true}, true, nil
}

// Release gives the slot back. It does not block on Redis.
func (s Slot) Release() {
	if s.c == nil {
		return
	}
	if s.local {
		s.c.mu.Lock()
		if s.c.local[s.subject]--; s.c.local[s.subject] <= 0 {
			delete(s.c.local, s.subject)
		}
		s.c.mu.Unlock()
		return
	}
	select {
	case s.c.release <- s:
	default:
		// The queue is full (Redis stalled): the slot expires on its own.
	}
}

// Run sends releases to Redis in batches until ctx ends.
func (c *Concurrency) Run(ctx context.Context) error {
	for {
		var batch []Slot
		select {
		case <-ctx.Done():
			return ctx.Err()
		case s := <-c.release:
			batch = append(batch, s)
		}
	drain:
		for len(batch) < 256 {
			select {
			case s := <-c.release:
				batch = append(batch, s)
			default:
				break drain
			}
		}
		rctx, cancel := context.WithTimeout(ctx, c.r.opts.Timeout*5)
		pipe := c.r.opts.Redis.Pipeline()
		for _, s := range batch {
			pipe.ZRem(rctx, c.r.opts.Keys.RateLimit(s.subject)+":inflight", s.member)
		}
		_, _ = pipe.Exec(rctx)
		cancel()
	}
}
