// Package publish turns the control plane's database into what the data plane
// reads from Redis: it compiles each tenant whose config changed into its
// shard (proxycfg.Shard) and publishes it with the index and an
// announcement (shards.go), and copies API key records from the key outbox.
// Domain packages record their changes with services/outbox in their
// transactions (and never import this package); the compiler reads the
// gateway objects through the catalog (catalog.ReadGateways) and maps them
// to the contract (contract.go); a Publisher does the rest.
package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/services/logevery"
	"github.com/tollgate/tollgate/services/outbox"
)

// lockID is the Postgres advisory lock that elects the one publishing replica.
const lockID int64 = 0x746f6c6c67617465 // "tollgate"

// Retention of superseded data in Redis and Postgres, and batch sizes.
const (
	// RevokedKeyTTL is how long a revoked key's record stays in Redis; after
	// that the key is unknown, which workers refuse just the same.
	RevokedKeyTTL = 30 * 24 * time.Hour
	// DefaultBatch is how many tenants one publish compiles at most.
	DefaultBatch = 100
	// outboxRetention is how long published outbox rows are kept for inspection.
	outboxRetention = 7 * 24 * time.Hour
	outboxBatch     = 500
)

// Options configures a Publisher.
type Options struct {
	// DB is the control plane's database.
	DB *pgxpool.Pool
	// Redis receives the shards, the index and key records.
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
	// Limits are the operator's per-tenant limits (each tenant's own
	// values apply on top): a tenant's shard over its config_bytes limit,
	// and larger than the shard it has, is refused. If nil,
	// limits.Defaults().
	Limits *limits.Limits
	// Batch is how many tenants one publish compiles at most; 0 means
	// DefaultBatch.
	Batch int
	// ShardGrace is how long a superseded shard stays readable unless
	// every heartbeating worker has read past it; 0 means
	// proxycfg.ShardGrace.
	ShardGrace time.Duration
	// Observer is told what the publisher does, for metrics
	// (services/ctlmetrics). If nil, nothing is told.
	Observer Observer
}

// Observer is told what a Publisher does, for the control plane's metrics.
// Its methods are called on the publishing goroutine and must return
// quickly.
type Observer interface {
	// SnapshotPublished reports a publish: the index sequence it wrote,
	// the bytes of the shards it wrote, the time compiling them took
	// (reading the database included) and the time writing them took
	// (Redis, the announcement and the database's records).
	SnapshotPublished(seq int64, bytes int, compile, publish time.Duration)
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
	limits     limits.Limits
	batch      int
	grace      time.Duration
	superseded []superseded // shards to drop once every worker read past them
	legacyDone bool
	failures   logevery.Limiter // an outage logs once a minute, not every retry
}

// New returns a Publisher; it does nothing until Run.
func New(opts Options) *Publisher {
	p := &Publisher{db: opts.DB, rdb: opts.Redis, keys: opts.Keys, log: opts.Logger, poll: opts.PollInterval,
		billingURL: opts.BillingURL, obs: opts.Observer, batch: opts.Batch, grace: opts.ShardGrace}
	if p.obs == nil {
		p.obs = nopObserver{}
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.poll <= 0 {
		p.poll = time.Second
	}
	if opts.Limits != nil {
		p.limits = *opts.Limits
	} else {
		p.limits = limits.Defaults()
	}
	if p.batch <= 0 {
		p.batch = DefaultBatch
	}
	if p.grace <= 0 {
		p.grace = proxycfg.ShardGrace
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
		p.failures.Error(p.log, "publisher stopped leading; retrying", "err", err)
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
			p.failures.Error(p.log, "publish failed; will retry", "err", err)
		} else if err == nil {
			p.failures.Recovered(p.log, "publishing again")
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

// Sync publishes whatever is pending: the shards of the tenants whose
// config changed since they were last handled (all of them if Redis lost
// the index), then the key outbox; and it drops superseded shards no
// worker needs. Only the replica holding the publisher lock should call
// it; Run does.
func (p *Publisher) Sync(ctx context.Context) error {
	reset, err := p.publishShards(ctx)
	if err != nil {
		return err
	}
	if reset {
		if err := p.resyncKeys(ctx); err != nil {
			return err
		}
	}
	if err := p.drainKeys(ctx); err != nil {
		return err
	}
	p.dropSuperseded(ctx)
	return nil
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
