// Package keyauth resolves API keys to their records. Keys are digested with
// the server secret (proxycfg.Digest) and looked up in Redis by digest (one
// request per digest at a time); answers are kept in a bounded in-process
// cache. Every digest published on the key channel is dropped from the
// cache, which is how a revoke (or a suspension, a cancellation, a new
// expiry) reaches every worker within a second.
//
// # The cache is keyed by the presented key, not by its digest
//
// The HMAC-SHA256 of a key was the largest cost of key auth per request,
// and it is a pure function of the key: a request whose key is cached does
// not compute it. Cache entries are found by a 64-bit keyed hash of the
// presented key (hash/maphash, with a random seed per store, so that no one
// outside the process can aim keys at an entry or at one shard) and hold a
// copy of the key's bytes, which a hit compares with the presented key in
// full, in constant time, under the shard's lock. A hash collision is
// therefore only ever a miss: the colliding key is digested and looked up
// like an unknown one, and can never be answered with another key's
// record. (Comparing digests instead would need the digest, which is the
// cost being avoided; a truncated or non-cryptographic hash alone could, in
// principle, be made to collide.)
//
// The price is that the worker holds, in memory only, the keys used within
// the cache's lifetime: never logged, never written to disk or Redis, and
// dropped (their bytes overwritten) when an entry is evicted, invalidated,
// purged, or sweepable: an entry past its TTL and past MaxStale (when it can
// no longer answer even while Redis is down) is removed by Run's sweep
// within a minute. This adds little to what the process already holds: it
// holds the digest key itself (with which the digests in Redis could be
// checked against guesses), and every key of the requests it is serving,
// in its connection buffers. Anyone able to read the worker's memory can
// read the keys passing through it either way; the cache widens that from
// the requests in flight to the keys used in the last PositiveTTL (60 s by
// default, MaxStale beyond it for keys Redis could not refresh).
//
// The store answers what a key is; the pipeline decides what that means.
// Revoked keys come back as unknown (nil); a record of any other status
// (active, suspended, canceled, past due, or one this worker does not
// know) is returned, and the caller refuses what it must.
package keyauth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/outage"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// Defaults of Options.
const (
	DefaultPositiveTTL = 60 * time.Second
	DefaultNegativeTTL = 5 * time.Second
	DefaultMaxEntries  = 1 << 20
	DefaultTimeout     = 2 * time.Second
	DefaultMaxStale    = 15 * time.Minute
)

const shardCount = 64

// ErrUnavailable is returned (wrapped) when a key is not cached and Redis
// cannot be asked; the proxy answers 503, not 401.
var ErrUnavailable = errors.New("key store unavailable")

// Options configure a Store.
type Options struct {
	// Redis holds the key records; required.
	Redis redis.UniversalClient
	// Keys names the Redis keys and the key channel.
	Keys proxycfg.Keys
	// Secret is the server secret of the key digests; required.
	Secret []byte
	// PositiveTTL is how long a found record (of any status but revoked)
	// is cached; 0 means 60s.
	PositiveTTL time.Duration
	// NegativeTTL is how long an unknown or revoked key is cached; 0 means 5s.
	NegativeTTL time.Duration
	// MaxEntries bounds the cache; 0 means 1<<20.
	MaxEntries int
	// Timeout bounds one Redis lookup; 0 means 2s.
	Timeout time.Duration
	// MaxStale is how long past its TTL a cached record keeps answering
	// while Redis cannot be asked (so that an outage does not turn every
	// known key into a 503); beyond it the key is unavailable (503), as a
	// revoke published meanwhile would not have reached this worker. 0
	// means DefaultMaxStale; negative means not at all.
	MaxStale time.Duration
	// Logger receives errors of the subscription; nil discards.
	Logger *slog.Logger
	// Outage receives the outcome of every Redis call, and logs an outage
	// once; nil means a tracker of its own that logs to Logger.
	Outage *outage.Tracker
}

// Digest is the raw HMAC-SHA256 of a key; its hex form is proxycfg.Digest.
type Digest [sha256.Size]byte

// String is the hex form used in Redis key names and on the key channel.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// Record is a key record as the store caches it, with what every request
// of the key needs derived once per load, so that the hot path does not
// build it.
type Record struct {
	proxycfg.KeyRecord
	keySubject      string // proxycfg.LimitSubject of ScopeKey
	consumerSubject string // proxycfg.LimitSubject of ScopeConsumer
	billingPeriod   string // proxycfg.BillingPeriodID of PeriodStart, "" without one
	periodStart     time.Time
	periodEnd       time.Time
}

// NewRecord derives a Record from kr (for records that do not come from
// the store, such as those of verified JWTs).
func NewRecord(kr proxycfg.KeyRecord) *Record {
	r := &Record{
		KeyRecord:       kr,
		keySubject:      proxycfg.LimitSubject(proxycfg.ScopeKey, kr.ID, kr.SubscriptionID, kr.ConsumerID, kr.PlanID),
		consumerSubject: proxycfg.LimitSubject(proxycfg.ScopeConsumer, kr.ID, kr.SubscriptionID, kr.ConsumerID, kr.PlanID),
	}
	if kr.PeriodEnd > kr.PeriodStart && kr.PeriodStart > 0 {
		r.billingPeriod = proxycfg.BillingPeriodID(kr.PeriodStart)
		r.periodStart, r.periodEnd = time.Unix(kr.PeriodStart, 0), time.Unix(kr.PeriodEnd, 0)
	}
	return r
}

// NewScopedRecord is NewRecord for callers that are not API keys of the
// tenant (verified JWTs): their rate-limit, quota and concurrency subjects
// are namespace + "/" + proxycfg.LimitSubject, so that they never share a
// counter with another tenant's callers or with API keys, whatever the ids
// their claims carry. The namespace must name the tenant (and the plan,
// when a change of plan should start afresh).
func NewScopedRecord(kr proxycfg.KeyRecord, namespace string) *Record {
	r := NewRecord(kr)
	r.keySubject = namespace + "/" + r.keySubject
	r.consumerSubject = namespace + "/" + r.consumerSubject
	return r
}

// BillingPeriod returns the quota period of the key's subscription's
// billing period when now is in it (ok false otherwise: calendar periods
// apply), without allocating.
func (r *Record) BillingPeriod(now time.Time) (id string, end time.Time, ok bool) {
	if r.billingPeriod == "" || now.Before(r.periodStart) || !now.Before(r.periodEnd) {
		return "", time.Time{}, false
	}
	return r.billingPeriod, r.periodEnd, true
}

// Subject is proxycfg.LimitSubject of the record under a plan's rate-limit
// scope, without allocating: whose requests share the plan's rate limit,
// quota and concurrency limit.
func (r *Record) Subject(scope string) string {
	if scope == proxycfg.ScopeConsumer {
		return r.consumerSubject
	}
	return r.keySubject
}

// entry is a cache entry: the answer for one presented key.
type entry struct {
	key     []byte  // the presented key (compared in full on a hit)
	digest  Digest  // its digest, by which it is invalidated
	rec     *Record // nil: negative entry
	expires int64   // unix nanoseconds
}

// matches reports whether e is the entry of key, in time independent of
// the bytes that differ.
func (e *entry) matches(key []byte) bool {
	return len(e.key) == len(key) && subtle.ConstantTimeCompare(e.key, key) == 1
}

// wipe overwrites the entry's copy of the key (under its shard's write
// lock: a hit compares under the read lock).
func (e *entry) wipe() { clear(e.key) }

type shard struct {
	mu sync.RWMutex
	m  map[uint64]entry // by keyHash of the presented key
	_  [24]byte         // keeps the shards' locks on separate cache lines
}

type call struct {
	done chan struct{}
	rec  *Record
	err  error
}

type hasher struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

// Store looks up key records. It is safe for concurrent use.
type Store struct {
	rdb      redis.UniversalClient
	keys     proxycfg.Keys
	posTTL   int64
	negTTL   int64
	maxStale int64 // unix nanoseconds; <= 0: no stale answers
	perShard int
	timeout  time.Duration
	logger   *slog.Logger
	outage   *outage.Tracker
	hashers  atomic.Pointer[hasherPool]

	seed       maphash.Seed // of keyHash
	shards     [shardCount]shard
	seq        atomic.Uint64 // bumped by every invalidation
	subscribed atomic.Bool

	// wmu serializes the writers of the cache (store, invalidations,
	// sweeps; readers take only their shard's read lock) and guards
	// byDigest, where invalidations, which name digests, find entries.
	wmu      sync.Mutex
	byDigest map[Digest]uint64

	flightMu sync.Mutex
	flight   map[Digest]*call
}

// New makes a Store. Call Run to follow the key channel.
func New(opts Options) (*Store, error) {
	if opts.Redis == nil {
		return nil, errors.New("keyauth: nil redis client")
	}
	if len(opts.Secret) == 0 {
		return nil, errors.New("keyauth: empty secret")
	}
	s := &Store{
		rdb:      opts.Redis,
		keys:     opts.Keys,
		posTTL:   int64(cmp(opts.PositiveTTL, DefaultPositiveTTL)),
		negTTL:   int64(cmp(opts.NegativeTTL, DefaultNegativeTTL)),
		timeout:  cmp(opts.Timeout, DefaultTimeout),
		logger:   opts.Logger,
		flight:   map[Digest]*call{},
		seed:     maphash.MakeSeed(),
		byDigest: map[Digest]uint64{},
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	s.maxStale = int64(opts.MaxStale)
	if opts.MaxStale == 0 {
		s.maxStale = int64(DefaultMaxStale)
	}
	s.outage = opts.Outage
	if s.outage == nil {
		s.outage = outage.New(outage.Options{Name: "redis", Logger: s.logger})
	}
	maxEntries := opts.MaxEntries
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	s.perShard = max(maxEntries/shardCount, 1)
	s.hashers.Store(newHasherPool(opts.Secret))
	for i := range s.shards {
		s.shards[i].m = map[uint64]entry{}
	}
	return s, nil
}

func cmp(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Digest computes the digest of key without allocating.
func (s *Store) Digest(key []byte) Digest {
	hp := s.hashers.Load()
	h := hp.pool.Get().(*hasher)
	h.h.Reset()
	h.h.Write(key)
	h.h.Sum(h.sum[:0])
	d := Digest(h.sum)
	hp.pool.Put(h)
	return d
}

// keyHash is the cache's hash of a presented key.
func (s *Store) keyHash(key []byte) uint64 { return maphash.Bytes(s.seed, key) }

// Lookup returns the record of key, nil if the key is unknown or revoked,
// or an error wrapping ErrUnavailable if Redis cannot be asked. The record
// may be of any other status, and expired: the caller decides (and must
// treat an unknown status as refused). It is shared: do not modify it.
func (s *Store) Lookup(ctx context.Context, key []byte) (*Record, error) {
	return s.LookupAt(ctx, key, time.Now())
}

// LookupAt is Lookup with the cache's entries checked for freshness at now
// (the time the request arrived, which the caller has read already).
func (s *Store) LookupAt(ctx context.Context, key []byte, now time.Time) (*Record, error) {
	h := s.keyHash(key)
	sh := &s.shards[h%shardCount]
	t := now.UnixNano()
	sh.mu.RLock()
	e, ok := sh.m[h]
	ok = ok && e.matches(key)
	sh.mu.RUnlock()
	if ok && t < e.expires {
		return e.rec, nil
	}
	rec, err := s.fetch(ctx, key, s.Digest(key))
	if err != nil && ok && e.rec != nil && t < e.expires+s.maxStale {
		// Redis is unreachable: keep answering with the record last known
		// (the caller still refuses a suspended or expired one) for up to
		// MaxStale. A change announced before the outage has dropped the
		// entry already; one announced during it cannot arrive, which is
		// why the record is not trusted for ever.
		return e.rec, nil
	}
	return rec, err
}

// fetch asks Redis for d (the digest of key), sharing one request among
// concurrent callers.
func (s *Store) fetch(ctx context.Context, key []byte, d Digest) (*Record, error) {
	s.flightMu.Lock()
	c := s.flight[d]
	if c == nil {
		c = &call{done: make(chan struct{})}
		s.flight[d] = c
		s.flightMu.Unlock()
		c.rec, c.err = s.load(key, d)
		s.flightMu.Lock()
		delete(s.flight, d)
		s.flightMu.Unlock()
		close(c.done)
		return c.rec, c.err
	}
	s.flightMu.Unlock()
	select {
	case <-c.done:
		return c.rec, c.err
	case <-ctx.Done():
		return nil, fmt.Errorf("key lookup: %w: %w", ErrUnavailable, ctx.Err())
	}
}

func (s *Store) load(key []byte, d Digest) (*Record, error) {
	seq := s.seq.Load()
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	hexDigest := d.String()
	raw, err := s.rdb.Get(ctx, s.keys.Key(hexDigest)).Bytes()
	if err == nil || errors.Is(err, redis.Nil) {
		s.outage.OK()
	}
	var rec *Record
	switch {
	case errors.Is(err, redis.Nil):
	case err != nil:
		s.outage.Fail("keyauth", err)
		return nil, fmt.Errorf("key lookup: %w: %w", ErrUnavailable, err)
	default:
		var r proxycfg.KeyRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			s.logger.Error("undecodable key record", "digest", hexDigest[:12], "err", err)
		} else if r.Status != proxycfg.KeyRevoked {
			rec = NewRecord(r)
		}
	}
	ttl := s.negTTL
	if rec != nil {
		ttl = s.posTTL
	}
	s.store(key, d, entry{rec: rec, expires: time.Now().UnixNano() + ttl}, seq)
	return rec, nil
}

// store caches e as the entry of key (whose digest is d) unless an
// invalidation happened since the lookup started (the answer may predate
// it). The entry gets its own copy of the key.
func (s *Store) store(key []byte, d Digest, e entry, seq uint64) {
	h := s.keyHash(key)
	sh := &s.shards[h%shardCount]
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.seq.Load() != seq {
		return
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old, ok := sh.m[h]; ok {
		// The key's previous entry, or (a 64-bit collision) another key's.
		s.drop(sh, h, &old)
	} else if len(sh.m) >= s.perShard {
		now := time.Now().UnixNano()
		for k, v := range sh.m {
			if v.expires <= now {
				s.drop(sh, k, &v)
			}
		}
		for k, v := range sh.m {
			if len(sh.m) < s.perShard {
				break
			}
			s.drop(sh, k, &v)
		}
	}
	e.key, e.digest = bytes.Clone(key), d
	sh.m[h] = e
	s.byDigest[d] = h
}

// drop removes the entry e found at h in sh (wmu and sh.mu held).
func (s *Store) drop(sh *shard, h uint64, e *entry) {
	delete(sh.m, h)
	if s.byDigest[e.digest] == h {
		delete(s.byDigest, e.digest)
	}
	e.wipe()
}

// Invalidate drops the digest (hex, as published on the key channel) from
// the cache. An undecodable digest purges the whole cache, to be safe.
func (s *Store) Invalidate(digestHex string) {
	var d Digest
	if n, err := hex.Decode(d[:], []byte(digestHex)); err != nil || n != len(d) {
		s.Purge()
		return
	}
	s.seq.Add(1)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	h, ok := s.byDigest[d]
	if !ok {
		return
	}
	sh := &s.shards[h%shardCount]
	sh.mu.Lock()
	if e, ok := sh.m[h]; ok && e.digest == d {
		s.drop(sh, h, &e)
	}
	sh.mu.Unlock()
	delete(s.byDigest, d)
}

// MarkStale makes every cached record due for a new lookup on its next
// use (negative entries are dropped), keeping the records themselves for
// the MaxStale fallback when Redis cannot answer.
func (s *Store) MarkStale() {
	s.seq.Add(1)
	now := time.Now().UnixNano()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for h, e := range sh.m {
			if e.rec == nil {
				s.drop(sh, h, &e)
				continue
			}
			if e.expires > now {
				e.expires = now
				sh.m[h] = e
			}
		}
		sh.mu.Unlock()
	}
}

// Purge drops every cached record.
func (s *Store) Purge() {
	s.seq.Add(1)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for _, e := range sh.m {
			e.wipe()
		}
		clear(sh.m)
		sh.mu.Unlock()
	}
	clear(s.byDigest)
}

// sweepEvery is how often Run drops the entries that can no longer answer.
const sweepEvery = time.Minute

// sweep drops the entries that can no longer answer at now, even while
// Redis is down: past their TTL and past MaxStale (so that the keys they
// hold leave memory).
func (s *Store) sweep(now int64) {
	grace := max(s.maxStale, 0)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for h, e := range sh.m {
			if e.expires+grace <= now {
				s.drop(sh, h, &e)
			}
		}
		sh.mu.Unlock()
	}
}

// Len is the number of cached entries.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}

// Subscribed reports whether the key channel subscription is live, that is
// whether revokes currently reach this worker.
func (s *Store) Subscribed() bool { return s.subscribed.Load() }

// Run follows the key channel until ctx ends, dropping every published digest
// from the cache. After each (re)subscription it marks the cache stale, since
// messages may have been missed while the subscription was down. It also
// sweeps the cache every minute (sweep).
func (s *Store) Run(ctx context.Context) error {
	sweeps := time.NewTicker(sweepEvery)
	defer sweeps.Stop()
	swept := make(chan struct{})
	defer func() { <-swept }()
	go func() {
		defer close(swept)
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-sweeps.C:
				s.sweep(now.UnixNano())
			}
		}
	}()
	ps := s.rdb.Subscribe(ctx, s.keys.KeyChannel())
	defer ps.Close()
	// Receive does not watch ctx; closing the subscription ends it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	defer s.subscribed.Store(false)
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			s.subscribed.Store(false)
			if ctx.Err() != nil {
				return nil
			}
			s.outage.Fail("keyauth", fmt.Errorf("key channel: %w", err))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		s.outage.OK()
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				// Messages may have been missed while unsubscribed: every
				// cached record is looked up again on its next use. They
				// are marked due rather than dropped, so that a key in use
				// keeps its stale-while-Redis-is-down fallback while the
				// connection pool is still coming back.
				s.MarkStale()
				s.subscribed.Store(true)
			}
		case *redis.Message:
			s.Invalidate(m.Payload)
		}
	}
}

// Credential extracts the API key of a request: the X-API-Key header, or
// else the token of an "Authorization: Bearer" header. fromAuthorization
// reports that the key came from Authorization (which then must not be
// forwarded). The result aliases the inputs.
func Credential(authorization, apiKey []byte) (key []byte, fromAuthorization bool) {
	if k := bytes.TrimSpace(apiKey); len(k) > 0 {
		return k, false
	}
	const bearer = "bearer "
	a := bytes.TrimSpace(authorization)
	if len(a) > len(bearer) && asciiEqualFold(a[:len(bearer)], bearer) {
		if k := bytes.TrimSpace(a[len(bearer):]); len(k) > 0 {
			return k, true
		}
	}
	return nil, false
}

func asciiEqualFold(b []byte, lower string) bool {
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// hasherPool holds HMAC states of one digest key.
type hasherPool struct {
	key  []byte
	pool sync.Pool
}

func newHasherPool(key []byte) *hasherPool {
	hp := &hasherPool{key: bytes.Clone(key)}
	hp.pool.New = func() any { return &hasher{h: hmac.New(sha256.New, hp.key)} }
	return hp
}

// SetKey switches the key API keys are digested with (the installation's
// digest key, which a worker given the secret learns from the snapshot).
// A change empties the cache: its entries were looked up under the old key.
func (s *Store) SetKey(key []byte) {
	if len(key) == 0 || bytes.Equal(s.hashers.Load().key, key) {
		return
	}
	s.hashers.Store(newHasherPool(key))
	s.Purge()
}
