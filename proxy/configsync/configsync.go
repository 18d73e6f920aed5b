// Package configsync keeps a worker's runtime in step with the config the
// control plane publishes to Redis: an index (tenant → shard generation) and
// one shard per tenant (proxycfg, shard.go).
//
// At start it loads the last good config from its disk cache (if any), then
// the index and every shard. Then it follows the config channel, whose
// messages name the tenants a publish changed, and polls the index's
// sequence, so that a missed message costs at most one poll interval (the
// change log says which tenants changed since the sequence it has; a worker
// further behind reads the whole index). It fetches and rebuilds only the
// tenants whose index entry moved.
//
// Each shard is decoded strictly and validated whole before the runtime is
// rebuilt with it. A shard that cannot be read, decoded, validated or built
// is rejected: that tenant's last good part keeps serving and every other
// tenant's changes still apply. A shard that needs a newer worker (its
// capability is above the one this worker speaks) is not served, and
// neither is an older shard of the tenant: the tenant is refused
// (Update.Refused) until a worker that speaks the version serves it.
//
// Files, by concern: configsync.go (the loop and the Redis protocol),
// diskcache.go (the last good config on disk), heartbeat.go (the worker's
// config heartbeat), statedir.go and lock_*.go (where the cache lives and
// its lock).
package configsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/outage"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// DefaultPollInterval is the poll period when Options.PollInterval is 0.
const DefaultPollInterval = time.Second

// fetchBatch bounds the shards fetched in one pipeline.
const fetchBatch = 500

// Update is what changes from one runtime to the next: the tenants whose
// shards changed (decoded and validated), the tenants to refuse, and the
// tenants that are gone.
type Update struct {
	// Seq is the index sequence the update brings the runtime to.
	Seq int64
	// DigestVersion is the installation's digest key version
	// (proxycfg.DigestRaw or DigestDerived).
	DigestVersion int
	// Shards are the new shards, in tenant id order.
	Shards []*proxycfg.Shard
	// Refused are tenants whose shard needs a newer worker: their hosts
	// are refused (an older part of theirs is replaced, not kept).
	Refused []Refusal
	// Removed are the ids of tenants no longer in the index.
	Removed []string
	// FromDisk says the update is the disk cache's, loaded before Redis
	// answered.
	FromDisk bool
}

// Refusal is a tenant this worker is too old for.
type Refusal struct {
	// Generation is the shard's generation.
	Generation int64
	// TooNew says what the shard needs and names the tenant and its
	// hosts.
	TooNew *proxycfg.TooNewError
}

// Options configure a Syncer that keeps a runtime of type T.
type Options[T any] struct {
	// Redis holds the index and shards; required.
	Redis redis.UniversalClient
	// Keys names the Redis keys and the config channel.
	Keys proxycfg.Keys
	// Apply makes the runtime that replaces cur (nil before the first)
	// with u applied. It must not change live state: the syncer swaps
	// the result in. A tenant whose part fails to build goes in failed,
	// and its previous part (if any) stays in the result; every other
	// tenant of u applies. Required.
	Apply func(cur *T, u *Update) (next *T, failed map[string]error)
	// Swapped, if set, runs after a new runtime went live (on the sync
	// goroutine), with the update that made it, for example to reconcile
	// health checks.
	Swapped func(old, cur *T, u *Update)
	// Capability is the capability version the worker speaks; 0 means
	// proxycfg.CapabilityVersion. Tests set less to play an older worker.
	Capability int
	// WorkerID names the worker in its config heartbeat
	// (proxycfg.Keys.ConfigWorkerBeat); "" writes no heartbeat.
	WorkerID string
	// PollInterval is how often the index sequence is polled; 0 means 1s.
	PollInterval time.Duration
	// Timeout bounds each Redis call; 0 means 5s.
	Timeout time.Duration
	// Logger receives rejections and errors; nil discards.
	Logger *slog.Logger
	// CacheFile, if set, keeps the last good config (the index's
	// platform fields and every applied shard) on local disk, appended to
	// after every change and compacted now and then, under a lock; Run
	// loads it before reaching Redis, so that a worker restarted while
	// Redis is down still serves every tenant it served. Redis replaces
	// it with anything else once it answers. "" turns it off;
	// DefaultSnapshotPath is where a worker keeps it by default.
	CacheFile string
	// Rejected, if set, is called for every rejected shard.
	Rejected func(tenantID string, generation int64, err error)
	// Outage receives the outcome of every Redis call, and logs an outage
	// once instead of every failed poll; nil means a tracker of its own
	// that logs to Logger.
	Outage *outage.Tracker
}

// tenantState is what the live runtime holds of a tenant.
type tenantState struct {
	entry   proxycfg.IndexEntry
	refused bool // a refusal part (the shard is too new for this worker)
}

// Syncer holds the live runtime and keeps it current.
type Syncer[T any] struct {
	opts     Options[T]
	cur      atomic.Pointer[T]
	gen      atomic.Int64
	tooNew   atomic.Int64 // tenants whose current shard this worker cannot enforce
	fromDisk bool         // the live runtime came from the disk cache and Redis has not answered since

	// State of the sync goroutine.
	seq      int64 // index sequence read
	digest   int
	have     map[string]tenantState
	rejected map[string]proxycfg.IndexEntry // bad shards, not fetched again
	pending  map[string]bool                // to fetch again (missing, or Redis failed)
	refused  int                            // tenants in have with a refusal part
	cache    *diskCache
	beat     beat
}

// New makes a Syncer; call Run to start it.
func New[T any](opts Options[T]) (*Syncer[T], error) {
	if opts.Redis == nil || opts.Apply == nil {
		return nil, errors.New("configsync: Redis and Apply are required")
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Outage == nil {
		opts.Outage = outage.New(outage.Options{Name: "redis", Logger: opts.Logger})
	}
	if opts.Capability <= 0 {
		opts.Capability = proxycfg.CapabilityVersion
	}
	s := &Syncer[T]{opts: opts, have: map[string]tenantState{},
		rejected: map[string]proxycfg.IndexEntry{}, pending: map[string]bool{}}
	if opts.CacheFile != "" {
		s.cache = &diskCache{path: opts.CacheFile, capability: opts.Capability, log: opts.Logger}
	}
	return s, nil
}

// Load returns the live runtime, nil before the first good config.
func (s *Syncer[T]) Load() *T { return s.cur.Load() }

// Generation is the index sequence of the live runtime (0 before the
// first).
func (s *Syncer[T]) Generation() int64 { return s.gen.Load() }

// Ready reports whether a config has been loaded.
func (s *Syncer[T]) Ready() bool { return s.cur.Load() != nil }

// Capability is the capability version the syncer serves.
func (s *Syncer[T]) Capability() int { return s.opts.Capability }

// TooNew is the number of tenants whose current shard needs a newer worker
// (their traffic is refused).
func (s *Syncer[T]) TooNew() int { return int(s.tooNew.Load()) }

// event is a config channel message; seq 0 asks for a poll (a message that
// could not be read, or a resubscription after an outage).
type event struct {
	seq     int64
	tenants []string
}

// Run syncs until ctx ends; it returns nil then. Redis errors are logged and
// retried at the next message or poll.
func (s *Syncer[T]) Run(ctx context.Context) error {
	events := make(chan event, 256)
	subDone := make(chan struct{})
	go func() {
		defer close(subDone)
		s.subscribe(ctx, events)
	}()
	defer func() { <-subDone }()
	defer s.stopBeat()

	if s.cache != nil && s.cur.Load() == nil {
		s.loadCache()
	}
	s.poll(ctx)
	tick := time.NewTicker(s.opts.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			s.poll(ctx)
		case ev := <-events:
			s.message(ctx, ev)
		}
		s.heartbeat(ctx)
	}
}

// subscribe forwards the config channel's messages. A message that does
// not fit the queue is dropped: the next one (or the next poll) finds the
// sequence past its own and reads the change log.
func (s *Syncer[T]) subscribe(ctx context.Context, events chan event) {
	ps := s.opts.Redis.Subscribe(ctx, s.opts.Keys.ConfigChannel())
	defer ps.Close()
	// Receive does not watch ctx; closing the subscription ends it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.opts.Outage.Fail("configsync", fmt.Errorf("config channel: %w", err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		s.opts.Outage.OK()
		var ev event
		switch m := msg.(type) {
		case *redis.Subscription:
			// Possibly a resubscription after messages were lost: poll.
		case *redis.Message:
			ev.seq, ev.tenants, _ = proxycfg.ParseChannelMessage(m.Payload)
		default:
			continue
		}
		select {
		case events <- ev:
		default:
		}
	}
}

// message handles a config channel message.
func (s *Syncer[T]) message(ctx context.Context, ev event) {
	switch {
	case ev.seq <= 0 || s.fromDisk || s.cur.Load() == nil:
		s.poll(ctx)
	case ev.seq <= s.seq:
		// Read already (by a poll, or the log).
	case ev.seq == s.seq+1:
		ids := append(slices.Clone(ev.tenants), proxycfg.IndexDigestField)
		vals, err := s.hmget(ctx, ids)
		if err != nil {
			s.redisFailed(ctx, err)
			return
		}
		digest, err := parseDigest(vals[len(ids)-1], s.digest)
		if err != nil {
			s.opts.Logger.Error("config index unreadable", "err", err)
			return
		}
		s.handle(ctx, ev.seq, digest, s.entriesOf(ev.tenants, vals[:len(ev.tenants)]), false)
	default:
		s.catchUp(ctx, ev.seq)
	}
}

// poll reads the index sequence and catches up with it; then it retries
// the tenants whose shards could not be fetched.
func (s *Syncer[T]) poll(ctx context.Context) {
	vals, err := s.hmget(ctx, []string{proxycfg.IndexSeqField})
	if err != nil {
		s.redisFailed(ctx, err)
		return
	}
	if vals[0] == nil {
		// Nothing published (yet, or Redis lost it: the control plane
		// publishes everything again). Whatever serves keeps serving.
		return
	}
	seq, err := strconv.ParseInt(fmt.Sprint(vals[0]), 10, 64)
	if err != nil {
		s.opts.Logger.Error("config index sequence unreadable", "value", vals[0])
		return
	}
	switch {
	case s.fromDisk || s.cur.Load() == nil || seq < s.seq:
		// The disk cache, or a Redis that lost the index and was
		// published to again: Redis, once reachable, is the truth.
		s.full(ctx)
	case seq > s.seq:
		s.catchUp(ctx, seq)
	}
	if len(s.pending) > 0 {
		s.retry(ctx)
	}
}

// catchUp reads the tenants changed since s.seq from the change log, up to
// to, or the whole index when the log does not reach back that far.
func (s *Syncer[T]) catchUp(ctx context.Context, to int64) {
	if to-s.seq > proxycfg.LogLength/2 {
		s.full(ctx)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	entries, err := s.opts.Redis.XRangeN(rctx, s.opts.Keys.ConfigLog(), strconv.FormatInt(s.seq+1, 10)+"-0", "+",
		to-s.seq).Result()
	cancel()
	if err != nil {
		s.redisFailed(ctx, err)
		return
	}
	if len(entries) == 0 || logSeq(entries[0].ID) != s.seq+1 {
		// Trimmed past our sequence, or a log written anew.
		s.full(ctx)
		return
	}
	last := s.seq
	set := map[string]bool{}
	for _, e := range entries {
		seq := logSeq(e.ID)
		if seq != last+1 {
			s.full(ctx)
			return
		}
		last = seq
		if v, ok := e.Values[proxycfg.LogTenantsField].(string); ok && v != "" {
			for id := range strings.SplitSeq(v, ",") {
				set[id] = true
			}
		}
	}
	ids := sortedKeys(set)
	vals, err := s.hmget(ctx, append(slices.Clone(ids), proxycfg.IndexDigestField))
	if err != nil {
		s.redisFailed(ctx, err)
		return
	}
	digest, err := parseDigest(vals[len(ids)], s.digest)
	if err != nil {
		s.opts.Logger.Error("config index unreadable", "err", err)
		return
	}
	s.handle(ctx, last, digest, s.entriesOf(ids, vals[:len(ids)]), false)
}

// full reads the whole index and brings every tenant in line with it.
func (s *Syncer[T]) full(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	all, err := s.opts.Redis.HGetAll(rctx, s.opts.Keys.ConfigIndex()).Result()
	cancel()
	if err != nil {
		s.redisFailed(ctx, err)
		return
	}
	s.opts.Outage.OK()
	seqRaw, ok := all[proxycfg.IndexSeqField]
	if !ok {
		return
	}
	seq, err := strconv.ParseInt(seqRaw, 10, 64)
	if err != nil {
		s.opts.Logger.Error("config index sequence unreadable", "value", seqRaw)
		return
	}
	digest, err := parseDigest(all[proxycfg.IndexDigestField], proxycfg.DigestRaw)
	if err != nil {
		s.opts.Logger.Error("config index unreadable", "err", err)
		return
	}
	entries := map[string]*proxycfg.IndexEntry{}
	for id, v := range all {
		if strings.HasPrefix(id, "~") {
			continue
		}
		e, err := proxycfg.ParseIndexEntry(v)
		if err != nil {
			s.opts.Logger.Error("config index entry unreadable; the tenant keeps what it has", "tenant", id, "err", err)
			if st, ok := s.have[id]; ok {
				entries[id] = &st.entry
			}
			continue
		}
		entries[id] = &e
	}
	for id := range s.have {
		if _, ok := entries[id]; !ok {
			entries[id] = nil
		}
	}
	s.handle(ctx, seq, digest, entries, true)
}

// retry fetches again the shards that could not be fetched, with their
// current entries.
func (s *Syncer[T]) retry(ctx context.Context) {
	ids := sortedKeys(s.pending)
	vals, err := s.hmget(ctx, ids)
	if err != nil {
		s.redisFailed(ctx, err)
		return
	}
	s.handle(ctx, s.seq, s.digest, s.entriesOf(ids, vals), false)
}

// handle brings the tenants of entries (nil: gone from the index) in line
// and swaps in the result at index sequence seq.
func (s *Syncer[T]) handle(ctx context.Context, seq int64, digest int, entries map[string]*proxycfg.IndexEntry, full bool) {
	u := &Update{Seq: seq, DigestVersion: digest}
	var fetch []string
	for _, id := range sortedKeys(entries) {
		e := entries[id]
		st, has := s.have[id]
		if e == nil {
			delete(s.pending, id)
			delete(s.rejected, id)
			if has {
				u.Removed = append(u.Removed, id)
			}
			continue
		}
		switch {
		case has && st.entry.Same(*e):
			delete(s.pending, id)
			continue
		case s.rejected[id].Same(*e):
			continue
		}
		// A shard too new for this worker is fetched all the same: the
		// tenant's hosts, which it refuses, are in it (DecodeShard reads
		// them even when it refuses the rest).
		fetch = append(fetch, id)
	}
	raws, err := s.fetch(ctx, fetch, entries)
	if err != nil {
		s.redisFailed(ctx, err)
		// What was read stays pending; the rest of the update applies.
	}
	good := map[string][]byte{}
	applied := map[string]proxycfg.IndexEntry{}
	for _, id := range fetch {
		e := entries[id]
		raw, ok := raws[id]
		if !ok {
			continue // not fetched (Redis failed): pending
		}
		if raw == nil || proxycfg.ShardSum(raw) != e.Sum {
			// Gone (superseded since the entry was read), or being
			// rewritten: read the entry again later.
			s.pending[id] = true
			continue
		}
		delete(s.pending, id)
		shard, err := proxycfg.DecodeShard(raw, s.opts.Capability)
		var tooNew *proxycfg.TooNewError
		switch {
		case errors.As(err, &tooNew):
			// Never served with restrictions this worker cannot read,
			// not even as the tenant's older shard (the tenant's newest
			// config is what it allows now): its traffic is refused (503)
			// until a worker that speaks the shard's version serves it.
			u.Refused = append(u.Refused, Refusal{Generation: e.Generation, TooNew: tooNew})
			applied[id] = *e
		case err != nil:
			s.reject(id, *e, err)
		case shard.Generation != e.Generation || shard.Tenant.ID != id:
			s.reject(id, *e, fmt.Errorf("shard under tenant %s generation %d says tenant %s generation %d",
				id, e.Generation, shard.Tenant.ID, shard.Generation))
		default:
			u.Shards = append(u.Shards, shard)
			good[id] = raw
			applied[id] = *e
		}
	}
	s.seq = seq
	if full {
		s.fromDisk = false
	}
	if len(u.Shards)+len(u.Refused)+len(u.Removed) == 0 && digest == s.digest && s.cur.Load() != nil {
		// Nothing to build: the runtime stays, at the new sequence.
		s.gen.Store(seq)
		s.tooNew.Store(int64(s.refused))
		return
	}
	s.digest = digest
	next, failed := s.opts.Apply(s.cur.Load(), u)
	for id, err := range failed {
		if e, ok := applied[id]; ok {
			s.reject(id, e, fmt.Errorf("build: %w", err))
			delete(applied, id)
			delete(good, id)
		}
	}
	for _, r := range u.Refused {
		id := r.TooNew.TenantID
		if e, ok := applied[id]; ok {
			s.setHave(id, tenantState{entry: e, refused: true})
			s.opts.Logger.Warn("tenant refused: its config needs a newer worker", "tenant", r.TooNew.Slug,
				"needs", r.TooNew.Need, "speaks", r.TooNew.Have)
		}
	}
	for id := range good {
		s.setHave(id, tenantState{entry: applied[id]})
		delete(s.rejected, id)
	}
	for _, id := range u.Removed {
		s.setHave(id, tenantState{})
	}
	s.swap(next, u)
	if s.cache != nil {
		// A refused tenant's older shard goes from the disk too: a worker
		// restarted while Redis is down must not serve it either.
		drop := u.Removed
		for _, r := range u.Refused {
			drop = append(drop[:len(drop):len(drop)], r.TooNew.TenantID)
		}
		if err := s.cache.record(seq, digest, applied, good, drop); err != nil {
			s.opts.Logger.Warn("config not cached on disk", "file", s.cache.path, "err", err)
		}
	}
}

// setHave records what the live runtime holds of a tenant (the zero state:
// nothing), keeping the count of tenants this worker is too old for.
func (s *Syncer[T]) setHave(id string, st tenantState) {
	if old, ok := s.have[id]; ok && old.refused {
		s.refused--
	}
	if st == (tenantState{}) {
		delete(s.have, id)
	} else {
		s.have[id] = st
		if st.refused {
			s.refused++
		}
	}
	s.tooNew.Store(int64(s.refused))
}

// fetch reads the shards of ids at their entries, in pipelined batches. A
// missing shard reads as nil; an id that is not in the result could not be
// read (the error says why).
func (s *Syncer[T]) fetch(ctx context.Context, ids []string, entries map[string]*proxycfg.IndexEntry) (map[string][]byte, error) {
	out := make(map[string][]byte, len(ids))
	for start := 0; start < len(ids); start += fetchBatch {
		batch := ids[start:min(start+fetchBatch, len(ids))]
		rctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		pipe := s.opts.Redis.Pipeline()
		cmds := make([]*redis.StringCmd, len(batch))
		for i, id := range batch {
			cmds[i] = pipe.Get(rctx, s.opts.Keys.ConfigShard(id, entries[id].Generation))
		}
		_, err := pipe.Exec(rctx)
		cancel()
		if err != nil && !errors.Is(err, redis.Nil) {
			return out, fmt.Errorf("read shards: %w", err)
		}
		for i, id := range batch {
			raw, err := cmds[i].Bytes()
			switch {
			case errors.Is(err, redis.Nil):
				out[id] = nil
			case err != nil:
				return out, fmt.Errorf("read shard of %s: %w", id, err)
			default:
				out[id] = raw
			}
		}
	}
	if len(ids) > 0 {
		s.opts.Outage.OK()
	}
	return out, nil
}

// reject records a bad shard: it is not fetched again until its entry
// changes, and the tenant's last good part keeps serving.
func (s *Syncer[T]) reject(id string, e proxycfg.IndexEntry, err error) {
	s.rejected[id] = e
	if s.opts.Rejected != nil {
		s.opts.Rejected(id, e.Generation, err)
	}
	s.opts.Logger.Error("config shard rejected; the tenant's last good config keeps serving",
		"tenant", id, "generation", e.Generation, "err", err)
}

func (s *Syncer[T]) swap(rt *T, u *Update) {
	old := s.cur.Swap(rt)
	s.gen.Store(u.Seq)
	s.tooNew.Store(int64(s.refused))
	if len(u.Shards)+len(u.Refused)+len(u.Removed) > 0 || old == nil {
		s.opts.Logger.Info("config live", "seq", u.Seq, "tenants", len(s.have), "changed", len(u.Shards),
			"refused", len(u.Refused), "removed", len(u.Removed))
	}
	if s.opts.Swapped != nil {
		s.opts.Swapped(old, rt, u)
	}
}

// hmget reads fields of the index.
func (s *Syncer[T]) hmget(ctx context.Context, fields []string) ([]any, error) {
	if len(fields) == 0 {
		return nil, nil
	}
	rctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	vals, err := s.opts.Redis.HMGet(rctx, s.opts.Keys.ConfigIndex(), fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("read config index: %w", err)
	}
	s.opts.Outage.OK()
	return vals, nil
}

// entriesOf parses the index values of ids (nil: not in the index). An
// unreadable entry keeps what the tenant has.
func (s *Syncer[T]) entriesOf(ids []string, vals []any) map[string]*proxycfg.IndexEntry {
	out := make(map[string]*proxycfg.IndexEntry, len(ids))
	for i, id := range ids {
		if id == "" || strings.HasPrefix(id, "~") {
			continue
		}
		v, ok := vals[i].(string)
		if !ok {
			out[id] = nil
			continue
		}
		e, err := proxycfg.ParseIndexEntry(v)
		if err != nil {
			s.opts.Logger.Error("config index entry unreadable; the tenant keeps what it has", "tenant", id, "err", err)
			continue
		}
		out[id] = &e
	}
	return out
}

func (s *Syncer[T]) redisFailed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	s.opts.Outage.Fail("configsync", err)
}

// loadCache swaps in the config kept on disk, if there is a good one.
func (s *Syncer[T]) loadCache() {
	c, err := s.cache.load()
	if err != nil {
		s.opts.Logger.Warn("config cache unreadable", "file", s.cache.path, "err", err)
		return
	}
	if c == nil {
		return
	}
	u := &Update{Seq: c.seq, DigestVersion: c.digest, FromDisk: true}
	entries := map[string]proxycfg.IndexEntry{}
	for _, id := range sortedKeys(c.shards) {
		cs := c.shards[id]
		if proxycfg.ShardSum(cs.raw) != cs.entry.Sum {
			s.opts.Logger.Error("config cache: shard does not match its entry; left out", "tenant", id)
			continue
		}
		shard, err := proxycfg.DecodeShard(cs.raw, s.opts.Capability)
		if err != nil {
			s.opts.Logger.Error("config cache: shard rejected", "tenant", id, "err", err)
			continue
		}
		u.Shards = append(u.Shards, shard)
		entries[id] = cs.entry
	}
	next, failed := s.opts.Apply(nil, u)
	for id, err := range failed {
		s.opts.Logger.Error("config cache: tenant not built", "tenant", id, "err", err)
		delete(entries, id)
	}
	for id, e := range entries {
		s.setHave(id, tenantState{entry: e})
	}
	s.seq, s.digest = c.seq, c.digest
	s.fromDisk = true
	s.opts.Logger.Info("config loaded from disk cache", "file", s.cache.path, "seq", c.seq, "tenants", len(entries))
	s.swap(next, u)
}

// logSeq is the sequence of a change log entry id ("<seq>-1").
func logSeq(id string) int64 {
	head, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseInt(head, 10, 64)
	return n
}

// parseDigest reads the index's digest version field (nil: def).
func parseDigest(v any, def int) (int, error) {
	if v == nil {
		return def, nil
	}
	sv, ok := v.(string)
	if !ok {
		return def, nil
	}
	d, err := strconv.Atoi(sv)
	if err != nil || (d != proxycfg.DigestRaw && d != proxycfg.DigestDerived) {
		return 0, fmt.Errorf("digest version %q unknown", sv)
	}
	return d, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
