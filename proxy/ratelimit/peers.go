package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/outage"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// heartbeatScript records a worker's heartbeat at the Redis clock, drops
// workers silent for longer than ARGV[2] ms, and returns how many remain.
var heartbeatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10)
return redis.call('ZCARD', KEYS[1])
`)

// DefaultHeartbeat is how often a worker announces itself.
const DefaultHeartbeat = time.Second

// Peers keeps this worker's heartbeat in proxycfg.Keys.WorkerRegistry and
// caches the number of live workers, which the limiters divide limits by
// while Redis is unreachable (the last count known stays in force).
type Peers struct {
	rdb      redis.UniversalClient
	keys     proxycfg.Keys
	id       string
	interval time.Duration
	live     atomic.Int64
	outage   *outage.Tracker // logs heartbeat failures as Redis outages
}

// NewPeers makes the registry of worker id; interval 0 means
// DefaultHeartbeat. A worker is live while its last heartbeat is younger
// than three intervals.
func NewPeers(rdb redis.UniversalClient, keys proxycfg.Keys, id string, interval time.Duration, logger *slog.Logger) *Peers {
	if interval <= 0 {
		interval = DefaultHeartbeat
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Peers{rdb: rdb, keys: keys, id: id, interval: interval,
		outage: outage.New(outage.Options{Name: "redis", Logger: logger})}
	p.live.Store(1)
	return p
}

// ReportTo makes the heartbeat report the outcome of its Redis calls to t
// (which logs outages once) instead of a tracker of its own. Call it
// before Run.
func (p *Peers) ReportTo(t *outage.Tracker) {
	if t != nil {
		p.outage = t
	}
}

// Live is the number of live workers (at least 1) at the last heartbeat.
func (p *Peers) Live() int { return int(max(p.live.Load(), 1)) }

// Beat sends one heartbeat and refreshes the live count.
func (p *Peers) Beat(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.interval)
	defer cancel()
	n, err := heartbeatScript.Run(ctx, p.rdb, []string{p.keys.WorkerRegistry()}, p.id,
		(3 * p.interval).Milliseconds()).Int64()
	if err != nil {
		return fmt.Errorf("worker heartbeat: %w", err)
	}
	p.live.Store(max(n, 1))
	return nil
}

// Run beats every interval until ctx ends, then removes this worker from
// the registry so that the others' shares grow at once.
func (p *Peers) Run(ctx context.Context) error {
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for {
		if err := p.Beat(ctx); err != nil {
			if ctx.Err() == nil {
				p.outage.Fail("heartbeat", err)
			}
		} else {
			p.outage.OK()
		}
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.Background(), p.interval)
			defer cancel()
			_ = p.rdb.ZRem(rctx, p.keys.WorkerRegistry(), p.id).Err()
			return ctx.Err()
		case <-tick.C:
		}
	}
}
