// Package publish turns the control plane's database into what the data plane
// reads from Redis: it compiles the config snapshot (proxycfg.Snapshot) when
// config_state.generation moves past the published generation, and copies
// API key records from the key outbox. Domain packages record their changes
// with services/outbox in their transactions (and never import this
// package); the compiler reads the gateway objects through the catalog
// (catalog.ReadGateways) and maps them to the contract (contract.go); a
// Publisher does the rest.
package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/outbox"
)

// lockID is the Postgres advisory lock that elects the one publishing replica.
const lockID int64 = 0x746f6c6c67617465 // "tollgate"

// Retention of superseded data in Redis and Postgres.
const (
	// OldSnapshotTTL is how long a superseded snapshot stays readable, for
	// workers that are still loading it.
	OldSnapshotTTL = time.Hour
	// RevokedKeyTTL is how long a revoked key's record stays in Redis; after
	// that the key is unknown, which workers refuse just the same.
	RevokedKeyTTL = 30 * 24 * time.Hour
	// outboxRetention is how long published outbox rows are kept for inspection.
	outboxRetention = 7 * 24 * time.Hour
	outboxBatch     = 500
)

// Options configures a Publisher.
type Options struct {
	// DB is the control plane's database.
	DB *pgxpool.Pool
	// Redis receives the snapshots and key records.
	Redis redis.UniversalClient
	// Keys names the Redis keys and channels (proxycfg contract).
	Keys proxycfg.Keys
	// Logger receives progress and errors. If nil, slog.Default() is used.
	Logger *slog.Logger
	// PollInterval is how often the publisher checks for work without a
	// notification, and how long a standby replica waits between attempts to
	// take the publisher lock. If zero, 1s.
	PollInterval time.Duration
	// BillingURL is the stable payment link put in the records of
	// subscription keys, with {subscription} for the subscription's id
	// (e.g. https://api.example.com/billing/subscriptions/{subscription}).
	// "" leaves records as the catalog made them.
	BillingURL string
	// Observer is told what the publisher does, for metrics
	// (services/ctlmetrics). If nil, nothing is told.
	Observer Observer
}

// Observer is told what a Publisher does, for the control plane's metrics.
// Its methods are called on the publishing goroutine and must return
// quickly.
type Observer interface {
	// SnapshotPublished reports a published snapshot: its generation, its
	// size, the time its compile took (reading the database included) and
	// the time writing it took (Redis, the announcement and the database's
	// published generation).
	SnapshotPublished(generation int64, bytes int, compile, publish time.Duration)
	// KeysPublished reports n key records copied to Redis.
	KeysPublished(n int)
	// SyncFailed reports a failed Sync (it is retried).
	SyncFailed()
	// Leading reports whether this replica holds the publisher lock.
	Leading(bool)
}

// nopObserver is the Observer of a Publisher given none.
type nopObserver struct{}

func (nopObserver) SnapshotPublished(int64, int, time.Duration, time.Duration) {}
func (nopObserver) KeysPublished(int)                                          {}
func (nopObserver) SyncFailed()                                                {}
func (nopObserver) Leading(bool)                                               {}

// Publisher copies the compiled config and key records to Redis. Any number of
// control-plane replicas may run one: a Postgres advisory lock lets exactly one
// publish at a time, and the others take over when it goes away.
type Publisher struct {
	db         *pgxpool.Pool
	rdb        redis.UniversalClient
	keys       proxycfg.Keys
	log        *slog.Logger
	poll       time.Duration
	lastPrune  time.Time
	billingURL string
	obs        Observer
}

// New returns a Publisher; it does nothing until Run.
func New(opts Options) *Publisher {
	p := &Publisher{db: opts.DB, rdb: opts.Redis, keys: opts.Keys, log: opts.Logger, poll: opts.PollInterval,
		billingURL: opts.BillingURL, obs: opts.Observer}
	if p.obs == nil {
		p.obs = nopObserver{}
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.poll <= 0 {
		p.poll = time.Second
	}
	p.log = p.log.With("component", "publisher")
	return p
}

// Run publishes until ctx is done, then returns nil. Lost database
// connections and Redis errors are logged and retried.
func (p *Publisher) Run(ctx context.Context) error {
	for {
		err := p.lead(ctx)
		if ctx.Err() != nil {
			return nil
		}
		p.log.Error("publisher stopped leading; retrying", "err", err)
		if !sleep(ctx, p.poll) {
			return nil
		}
	}
}

// lead takes the publisher lock on a dedicated connection and, while it
// holds it, publishes on every notification and poll tick.
func (p *Publisher) lead(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, p.db.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	// Closing the session releases the advisory lock and the LISTEN.
	defer conn.Close(context.Background())

	waiting := false
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockID).Scan(&ok); err != nil {
			return fmt.Errorf("take publisher lock: %w", err)
		}
		if ok {
			break
		}
		if !waiting {
			p.log.Info("another replica is publishing; standing by")
			waiting = true
		}
		if !sleep(ctx, p.poll) {
			return ctx.Err()
		}
	}
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{outbox.Channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	p.log.Info("publishing")
	p.obs.Leading(true)
	defer p.obs.Leading(false)
	for {
		// At start this is the catch-up after a restart; later it runs on
		// every notification and every poll tick.
		if err := p.Sync(ctx); err != nil && ctx.Err() == nil {
			p.obs.SyncFailed()
			p.log.Error("publish failed; will retry", "err", err)
		}
		wctx, cancel := context.WithTimeout(ctx, p.poll)
		err := conn.PgConn().WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && !pgconn.Timeout(err) {
			return fmt.Errorf("wait for notification: %w", err)
		}
	}
}

// Sync publishes whatever is pending: the snapshot if the generation moved
// past the published one (or Redis lost it), then the key outbox. Only the
// replica holding the publisher lock should call it; Run does.
func (p *Publisher) Sync(ctx context.Context) error {
	reset, err := p.publishSnapshot(ctx)
	if err != nil {
		return err
	}
	if reset {
		if err := p.resyncKeys(ctx); err != nil {
			return err
		}
	}
	return p.drainKeys(ctx)
}

// setCurrent moves Current forward only: published generations are monotonic
// even if an old snapshot were ever published late.
var setCurrent = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local gen = tonumber(ARGV[1])
if gen > cur then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0`)

// publishSnapshot compiles and publishes the snapshot if needed. reset
// reports that Redis had lost the current generation (flushed or replaced),
// so that key records must be rewritten too.
func (p *Publisher) publishSnapshot(ctx context.Context) (reset bool, err error) {
	var gen, published int64
	var snap *proxycfg.Snapshot
	compileStart := time.Now()
	current, err := p.rdb.Get(ctx, p.keys.Current()).Result()
	switch {
	case errors.Is(err, redis.Nil):
		reset = true
	case err != nil:
		return false, fmt.Errorf("read current generation: %w", err)
	}
	err = pgx.BeginTxFunc(ctx, p.db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, `SELECT generation, published_generation FROM config_state`).
				Scan(&gen, &published); err != nil {
				return fmt.Errorf("read config state: %w", err)
			}
			if gen <= published && !reset {
				return nil
			}
			snap, err = Compile(ctx, tx, gen)
			return err
		})
	if err != nil {
		return false, fmt.Errorf("compile snapshot: %w", err)
	}
	if snap == nil {
		return false, nil
	}
	publishStart := time.Now()
	compiled := publishStart.Sub(compileStart)
	if cur, err := strconv.ParseInt(current, 10, 64); err == nil && cur > gen {
		// Redis is ahead of the database (e.g. the database was restored from
		// a backup). Workers keep the newer snapshot; publishing resumes once
		// the generation passes it.
		p.log.Warn("redis holds a newer generation than the database; not publishing", "redis", cur, "db", gen)
		return false, nil
	}
	if err := snap.Validate(); err != nil {
		return false, fmt.Errorf("compiled snapshot %d is invalid: %w", gen, err)
	}
	raw, err := json.Marshal(snap)
	if err != nil {
		return false, fmt.Errorf("marshal snapshot: %w", err)
	}
	if err := p.rdb.Set(ctx, p.keys.Snapshot(gen), raw, 0).Err(); err != nil {
		return false, fmt.Errorf("write snapshot %d: %w", gen, err)
	}
	if err := setCurrent.Run(ctx, p.rdb, []string{p.keys.Current()}, gen).Err(); err != nil {
		return false, fmt.Errorf("set current generation %d: %w", gen, err)
	}
	if err := p.rdb.Publish(ctx, p.keys.ConfigChannel(), strconv.FormatInt(gen, 10)).Err(); err != nil {
		return false, fmt.Errorf("announce generation %d: %w", gen, err)
	}
	if published > 0 && published != gen {
		if err := p.rdb.Expire(ctx, p.keys.Snapshot(published), OldSnapshotTTL).Err(); err != nil {
			p.log.Warn("could not expire old snapshot", "generation", published, "err", err)
		}
	}
	if _, err := p.db.Exec(ctx, `UPDATE config_state SET published_generation = $1 WHERE published_generation < $1`, gen); err != nil {
		return false, fmt.Errorf("record published generation %d: %w", gen, err)
	}
	p.obs.SnapshotPublished(gen, len(raw), compiled, time.Since(publishStart))
	p.log.Info("published config", "generation", gen, "tenants", len(snap.Tenants), "bytes", len(raw))
	return reset, nil
}

// writeRecords sets each key record and announces its digest, in order.
func (p *Publisher) writeRecords(ctx context.Context, digests []string, records [][]byte) error {
	pipe := p.rdb.Pipeline()
	for i, d := range digests {
		var rec proxycfg.KeyRecord
		if err := json.Unmarshal(records[i], &rec); err != nil {
			return fmt.Errorf("decode key record %s: %w", d, err)
		}
		// A revoked key's record, and that of a rotated key past its
		// expiry, only needs to outlive the workers' caches; suspended,
		// past-due and canceled keys keep their record so that workers
		// answer them with their own problem, not as unknown keys.
		ttl := time.Duration(0)
		switch {
		case rec.Status == proxycfg.KeyRevoked:
			ttl = RevokedKeyTTL
		case rec.ExpiresAt > 0:
			ttl = max(time.Until(time.Unix(rec.ExpiresAt, 0)), 0) + RevokedKeyTTL
		}
		raw := records[i]
		if rec.SubscriptionID != "" && rec.BillingURL == "" && p.billingURL != "" {
			// The stable link a 402 answer carries, where the developer
			// fixes the payment (the control plane redirects it to the
			// tenant's portal and on to Stripe).
			rec.BillingURL = strings.ReplaceAll(p.billingURL, "{subscription}", rec.SubscriptionID)
			if b, err := json.Marshal(rec); err == nil {
				raw = b
			}
		}
		pipe.Set(ctx, p.keys.Key(d), raw, ttl)
		pipe.Publish(ctx, p.keys.KeyChannel(), d)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("write key records: %w", err)
	}
	return nil
}

// drainKeys copies unpublished outbox rows to Redis in id order.
func (p *Publisher) drainKeys(ctx context.Context) error {
	for {
		rows, err := p.db.Query(ctx, `SELECT id, digest, record FROM key_outbox
			WHERE published_at IS NULL ORDER BY id LIMIT $1`, outboxBatch)
		if err != nil {
			return fmt.Errorf("read key outbox: %w", err)
		}
		var ids []int64
		var digests []string
		var records [][]byte
		var id int64
		var digest string
		var record []byte
		_, err = pgx.ForEachRow(rows, []any{&id, &digest, &record}, func() error {
			ids = append(ids, id)
			digests = append(digests, digest)
			records = append(records, append([]byte(nil), record...))
			return nil
		})
		if err != nil {
			return fmt.Errorf("read key outbox: %w", err)
		}
		if len(ids) == 0 {
			break
		}
		if err := p.writeRecords(ctx, digests, records); err != nil {
			return err
		}
		if _, err := p.db.Exec(ctx, `UPDATE key_outbox SET published_at = now() WHERE id = ANY($1)`, ids); err != nil {
			return fmt.Errorf("mark key outbox published: %w", err)
		}
		p.obs.KeysPublished(len(ids))
		p.log.Debug("published key records", "count", len(ids))
		if len(ids) < outboxBatch {
			break
		}
	}
	if time.Since(p.lastPrune) > time.Hour {
		if _, err := p.db.Exec(ctx, `DELETE FROM key_outbox WHERE published_at < now() - $1 * interval '1 second'`,
			int64(outboxRetention/time.Second)); err != nil {
			return fmt.Errorf("prune key outbox: %w", err)
		}
		p.lastPrune = time.Now()
	}
	return nil
}

// resyncKeys rewrites the record of every key, for a Redis that lost them.
func (p *Publisher) resyncKeys(ctx context.Context) error {
	after := ""
	total := 0
	for {
		rows, err := p.db.Query(ctx, `SELECT digest, json_build_object('id', id::text, 'tenant_id', tenant_id::text,
			'consumer_id', consumer_id::text, 'plan_id', plan_id::text, 'status', status)::text
			FROM keys WHERE digest > $1 ORDER BY digest LIMIT $2`, after, outboxBatch)
		if err != nil {
			return fmt.Errorf("read keys: %w", err)
		}
		var digests []string
		var records [][]byte
		var digest, record string
		_, err = pgx.ForEachRow(rows, []any{&digest, &record}, func() error {
			digests = append(digests, digest)
			records = append(records, []byte(record))
			return nil
		})
		if err != nil {
			return fmt.Errorf("read keys: %w", err)
		}
		if len(digests) == 0 {
			break
		}
		if err := p.writeRecords(ctx, digests, records); err != nil {
			return err
		}
		p.obs.KeysPublished(len(digests))
		total += len(digests)
		after = digests[len(digests)-1]
	}
	if total > 0 {
		p.log.Info("rewrote all key records", "count", total)
	}
	return nil
}

// sleep waits d or until ctx is done; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
