// Package meter counts every proxied request for usage metering. Requests
// are aggregated in memory per minute and per (tenant, API, consumer, key,
// plan, status class); every flush interval the aggregate is sent to the
// Redis usage stream (proxycfg.Keys.UsageStream) as one entry, which the
// control plane's aggregator folds into Postgres exactly once.
//
// Loss bounds: a graceful shutdown flushes everything (Run's final flush).
// A batch whose XADD fails is kept and retried with the next flush (up to
// MaxPending rows; beyond that the oldest batches are dropped and counted in
// Dropped), and a retry carries the same batch id, so it is never counted
// twice. A worker killed with SIGKILL loses what it had not sent yet: at
// most one flush interval (1 s by default) of its traffic, plus any batch
// still pending because Redis was unreachable.
package meter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/outage"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// Defaults of Options.
const (
	DefaultInterval   = time.Second
	DefaultMaxPending = 100_000
	DefaultTimeout    = 5 * time.Second
)

// Options configure a Meter.
type Options struct {
	// Redis receives the usage stream; required.
	Redis redis.UniversalClient
	// Keys names the stream.
	Keys proxycfg.Keys
	// WorkerID makes batch ids unique; required.
	WorkerID string
	// Interval is the flush interval; 0 means DefaultInterval.
	Interval time.Duration
	// MaxPending bounds the rows kept while Redis fails; 0 means
	// DefaultMaxPending.
	MaxPending int
	// Timeout bounds one XADD; 0 means DefaultTimeout.
	Timeout time.Duration
	// Logger receives flush failures; nil discards.
	Logger *slog.Logger
	// Outage receives the outcome of every flush and logs Redis outages
	// once; nil means a tracker of its own that logs to Logger.
	Outage *outage.Tracker
}

// Sample is one finished request.
type Sample struct {
	// At is when the request arrived.
	At time.Time
	// TenantID and APIID are required (unrouted requests are not metered);
	// the rest are "" when unknown (auth "none", refused before auth).
	TenantID, APIID, ConsumerID, KeyID, PlanID string
	// Status is the HTTP status answered.
	Status int
	// BytesIn and BytesOut are the request and response body sizes.
	BytesIn, BytesOut int64
	// Latency is the time from arrival to the response.
	Latency time.Duration
}

type dims struct {
	minute                           int64
	tenant, api, consumer, key, plan string
	class                            int
}

type shard struct {
	mu sync.Mutex
	m  map[dims]*proxycfg.UsageRow
	_  [40]byte // keeps shards' locks on separate cache lines
}

const shards = 16

// batch is one stream entry; its id stays the same across retries.
type batch struct {
	id   string
	rows []proxycfg.UsageRow
}

// Meter aggregates samples and ships them. Record is safe for concurrent
// use; Run drives the flushes.
type Meter struct {
	opts    Options
	shards  [shards]shard
	flushMu sync.Mutex // one flush at a time; guards queue, queued, seq
	queue   []batch    // built, not yet sent, oldest first
	queued  int        // rows in queue
	seq     uint64
	dropped atomic.Int64
	sent    atomic.Int64

	// Drops are logged at most once a minute (flush goroutine only).
	dropLogged time.Time
	dropUnlog  int64
}

// New makes a Meter.
func New(opts Options) (*Meter, error) {
	if opts.Redis == nil || opts.WorkerID == "" {
		return nil, errors.New("meter: redis and worker id are required")
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultMaxPending
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Outage == nil {
		opts.Outage = outage.New(outage.Options{Name: "redis", Logger: opts.Logger})
	}
	m := &Meter{opts: opts}
	for i := range m.shards {
		m.shards[i].m = map[dims]*proxycfg.UsageRow{}
	}
	return m, nil
}

// Record counts one request.
func (m *Meter) Record(s *Sample) {
	if s.TenantID == "" || s.APIID == "" {
		return
	}
	sec := s.At.Unix()
	class := s.Status / 100
	if class < 1 || class > 5 {
		class = 5
	}
	k := dims{minute: sec - sec%60, tenant: s.TenantID, api: s.APIID, consumer: s.ConsumerID,
		key: s.KeyID, plan: s.PlanID, class: class}
	ms := float64(s.Latency) / float64(time.Millisecond)
	b := proxycfg.LatencyBucket(ms)
	// A shard at random (the runtime's per-thread generator): no counter
	// shared by every core to pick it.
	sh := &m.shards[rand.Uint32N(shards)]
	sh.mu.Lock()
	r := sh.m[k]
	if r == nil {
		r = &proxycfg.UsageRow{Minute: k.minute, TenantID: k.tenant, APIID: k.api, ConsumerID: k.consumer,
			KeyID: k.key, PlanID: k.plan, StatusClass: class}
		sh.m[k] = r
	}
	r.Requests++
	r.BytesIn += s.BytesIn
	r.BytesOut += s.BytesOut
	r.LatencyMicros += s.Latency.Microseconds()
	r.Latency[b]++
	sh.mu.Unlock()
}

// Dropped is the number of requests dropped because Redis failed for too
// long (MaxPending rows were waiting).
func (m *Meter) Dropped() int64 { return m.dropped.Load() }

// Sent is the number of requests shipped to the stream so far.
func (m *Meter) Sent() int64 { return m.sent.Load() }

// Flush ships everything recorded so far as a new batch, after any batches
// still queued from failed flushes (oldest first, each under its own id).
// On failure the unsent batches stay queued for the next Flush.
func (m *Meter) Flush(ctx context.Context) error {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	var fresh []proxycfg.UsageRow
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		if len(sh.m) == 0 {
			sh.mu.Unlock()
			continue
		}
		old := sh.m
		sh.m = make(map[dims]*proxycfg.UsageRow, len(old))
		sh.mu.Unlock()
		for _, r := range old {
			fresh = append(fresh, *r)
		}
	}
	if len(fresh) > 0 {
		m.seq++
		m.queue = append(m.queue, batch{id: m.opts.WorkerID + "-" + strconv.FormatUint(m.seq, 10), rows: fresh})
		m.queued += len(fresh)
		for m.queued > m.opts.MaxPending && len(m.queue) > 1 {
			var n int64
			for _, r := range m.queue[0].rows {
				n += r.Requests
			}
			m.queued -= len(m.queue[0].rows)
			m.queue = m.queue[1:]
			m.dropped.Add(n)
			m.dropUnlog += n
			if now := time.Now(); now.Sub(m.dropLogged) >= outage.DefaultEvery {
				m.opts.Logger.Error("usage dropped: redis unreachable for too long", "requests", m.dropUnlog)
				m.dropLogged, m.dropUnlog = now, 0
			}
		}
	}
	for len(m.queue) > 0 {
		if err := m.send(ctx, &m.queue[0]); err != nil {
			return err
		}
		m.queued -= len(m.queue[0].rows)
		m.queue = m.queue[1:]
	}
	return nil
}

func (m *Meter) send(ctx context.Context, b *batch) error {
	raw, err := json.Marshal(b.rows)
	if err != nil {
		return fmt.Errorf("meter: encode usage: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	err = m.opts.Redis.XAdd(ctx, &redis.XAddArgs{Stream: m.opts.Keys.UsageStream(),
		Values: []any{proxycfg.UsageBatchField, b.id, proxycfg.UsageField, raw}}).Err()
	if err != nil {
		return fmt.Errorf("meter: send usage: %w", err)
	}
	var n int64
	for _, r := range b.rows {
		n += r.Requests
	}
	m.sent.Add(n)
	return nil
}

// Run flushes every interval until ctx ends, then flushes once more
// (bounded by Timeout) so that a graceful shutdown loses nothing.
func (m *Meter) Run(ctx context.Context) error {
	tick := time.NewTicker(m.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := m.Flush(context.Background()); err != nil {
				m.opts.Logger.Error("final usage flush failed", "err", err)
				return fmt.Errorf("final flush: %w", err)
			}
			return ctx.Err()
		case <-tick.C:
			if err := m.Flush(ctx); err != nil {
				if ctx.Err() == nil {
					// Queued for the next flush; the outage is logged once.
					m.opts.Outage.Fail("meter", err)
				}
			} else {
				m.opts.Outage.OK()
			}
		}
	}
}
