package usage

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/logevery"
	"github.com/tollgate/tollgate/services/store"
)

// Defaults of AggregatorOptions.
const (
	DefaultGroup     = "tollgate-usage"
	DefaultBatch     = 200
	DefaultBlock     = time.Second
	DefaultClaimIdle = 30 * time.Second
	// EntryRetention is how long processed entry ids are remembered. An
	// entry is deleted from the stream right after it is acknowledged, so
	// it can only come back (be redelivered) while it is pending, which is
	// far shorter.
	EntryRetention = 7 * 24 * time.Hour
)

// AggregatorOptions configure an Aggregator.
type AggregatorOptions struct {
	// DB receives the rollups; required.
	DB *pgxpool.Pool
	// Redis holds the usage stream; required.
	Redis redis.UniversalClient
	// Keys names the stream (Keys.UsageStream).
	Keys proxycfg.Keys
	// Group is the consumer group; "" means DefaultGroup.
	Group string
	// Consumer names this reader in the group; "" means the host name.
	Consumer string
	// Batch is the most entries read per round; 0 means DefaultBatch.
	Batch int
	// Block is how long a read waits for new entries; 0 means DefaultBlock.
	Block time.Duration
	// ClaimIdle is how long an entry may stay pending with another consumer
	// (one that died) before this one claims it; 0 means DefaultClaimIdle.
	ClaimIdle time.Duration
	// Logger receives errors; nil means slog.Default().
	Logger *slog.Logger
	// Observer is told what the aggregator does, for metrics
	// (services/ctlmetrics); nil tells nothing.
	Observer AggregatorObserver
}

// AggregatorObserver is told what an Aggregator does, for the control
// plane's metrics. Its methods must return quickly.
type AggregatorObserver interface {
	// Committed reports a batch of stream entries folded into Postgres
	// and acknowledged: how many entries, how many usage rows they held
	// (fresh entries only: redeliveries add none), and when the newest of
	// them was added to the stream (from its id).
	Committed(entries, rows int, newest time.Time)
	// Failed reports a failed round (it is retried with backoff).
	Failed()
}

// Aggregator reads the workers' usage stream with a consumer group and
// folds each entry into usage_minutes exactly once: the rollup upserts and
// the entry's id are written in one transaction (a redelivered entry whose
// id is already recorded adds nothing), the entry is acknowledged and
// deleted only after the commit, and entries left pending by a dead
// aggregator are claimed (XAUTOCLAIM) after ClaimIdle. Several aggregators
// may run at once (one per control plane replica).
//
// Every command touches the stream alone, so a Redis Cluster serves it from
// the master of the stream's slot (go-redis follows it through MOVED after
// a failover); the group is (re)created at every round, so a stream that a
// failover lost gets its group back instead of failing with NOGROUP.
type Aggregator struct {
	opts     AggregatorOptions
	log      *slog.Logger
	failures logevery.Limiter // an outage logs once a minute, not every retry
}

// NewAggregator makes an Aggregator; Run starts it.
func NewAggregator(opts AggregatorOptions) (*Aggregator, error) {
	if opts.DB == nil || opts.Redis == nil {
		return nil, errors.New("usage aggregator: db and redis are required")
	}
	if opts.Group == "" {
		opts.Group = DefaultGroup
	}
	if opts.Consumer == "" {
		// The host name survives a restart on the same machine (or pod), so
		// the restarted aggregator drains what it left pending at once
		// instead of waiting ClaimIdle. Two aggregators sharing a name is
		// harmless: every entry counts once whoever commits it.
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "aggregator"
		}
		opts.Consumer = host
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	if opts.Block <= 0 {
		opts.Block = DefaultBlock
	}
	if opts.ClaimIdle <= 0 {
		opts.ClaimIdle = DefaultClaimIdle
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Aggregator{opts: opts, log: opts.Logger}, nil
}

// Run aggregates until ctx is cancelled; it returns ctx's error. Failures
// of Redis or Postgres are logged and retried with backoff: entries stay
// pending (or unread) until they are committed, so nothing is lost.
func (a *Aggregator) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	lastClaim := time.Time{}
	lastPrune := time.Time{}
	for ctx.Err() == nil {
		err := a.ensureGroup(ctx)
		if err == nil && time.Since(lastClaim) >= a.opts.ClaimIdle/2 {
			// Own pending entries first (a restart under the same name), then
			// those of dead consumers.
			if err = a.drainPending(ctx); err == nil {
				err = a.claim(ctx)
			}
			lastClaim = time.Now()
		}
		if err == nil {
			_, err = a.Step(ctx)
		}
		if err == nil && time.Since(lastPrune) > time.Hour {
			err = a.prune(ctx)
			lastPrune = time.Now()
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if a.opts.Observer != nil {
				a.opts.Observer.Failed()
			}
			a.failures.Error(a.log, "usage aggregator failing; retrying", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 10*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		a.failures.Recovered(a.log, "usage aggregator recovered")
	}
	return ctx.Err()
}

func (a *Aggregator) ensureGroup(ctx context.Context) error {
	err := a.opts.Redis.XGroupCreateMkStream(ctx, a.opts.Keys.UsageStream(), a.opts.Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create consumer group: %w", err)
	}
	return nil
}

// Step reads one batch of new entries (waiting up to Block) and commits it.
// It returns how many entries it processed.
func (a *Aggregator) Step(ctx context.Context) (int, error) {
	res, err := a.opts.Redis.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: a.opts.Group, Consumer: a.opts.Consumer,
		Streams: []string{a.opts.Keys.UsageStream(), ">"},
		Count:   int64(a.opts.Batch), Block: a.opts.Block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read usage stream: %w", err)
	}
	n := 0
	for _, s := range res {
		if err := a.commit(ctx, s.Messages); err != nil {
			return n, err
		}
		n += len(s.Messages)
	}
	return n, nil
}

// drainPending re-processes entries delivered to this consumer name but
// never acknowledged.
func (a *Aggregator) drainPending(ctx context.Context) error {
	for {
		res, err := a.opts.Redis.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: a.opts.Group, Consumer: a.opts.Consumer,
			Streams: []string{a.opts.Keys.UsageStream(), "0"},
			Count:   int64(a.opts.Batch), Block: -1,
		}).Result()
		if errors.Is(err, redis.Nil) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read own pending usage: %w", err)
		}
		if len(res) == 0 || len(res[0].Messages) == 0 {
			return nil
		}
		if err := a.commit(ctx, res[0].Messages); err != nil {
			return err
		}
	}
}

// claim takes over and processes entries pending with other consumers for
// longer than ClaimIdle.
func (a *Aggregator) claim(ctx context.Context) error {
	start := "0-0"
	for {
		msgs, next, err := a.opts.Redis.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: a.opts.Keys.UsageStream(), Group: a.opts.Group, Consumer: a.opts.Consumer,
			MinIdle: a.opts.ClaimIdle, Start: start, Count: int64(a.opts.Batch),
		}).Result()
		if err != nil {
			return fmt.Errorf("claim pending usage: %w", err)
		}
		if len(msgs) > 0 {
			a.log.Info("usage aggregator claimed pending entries", "count", len(msgs))
			if err := a.commit(ctx, msgs); err != nil {
				return err
			}
		}
		if next == "0-0" || next == "" {
			return nil
		}
		start = next
	}
}

// commit folds msgs into Postgres in one transaction, then acknowledges and
// deletes them from the stream.
func (a *Aggregator) commit(ctx context.Context, msgs []redis.XMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	stream := a.opts.Keys.UsageStream()
	ids := make([]string, len(msgs))
	dedupe := make([]string, len(msgs))
	folded := 0 // usage rows of fresh entries
	for i, m := range msgs {
		ids[i] = m.ID
		// A batch id (workers send one) survives a retried XADD that landed
		// twice; entries without one are identified by their stream id.
		dedupe[i] = "e:" + m.ID
		if b, _ := m.Values[proxycfg.UsageBatchField].(string); b != "" {
			dedupe[i] = "b:" + b
		}
	}
	err := store.InTx(ctx, a.opts.DB, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `INSERT INTO usage_entries (stream, entry_id) SELECT $1, unnest($2::text[])
			ON CONFLICT DO NOTHING RETURNING entry_id`, stream, dedupe)
		if err != nil {
			return fmt.Errorf("record usage entries: %w", err)
		}
		fresh, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("record usage entries: %w", err)
		}
		isFresh := make(map[string]bool, len(fresh))
		for _, id := range fresh {
			isFresh[id] = true
		}
		agg := map[rowKey]*proxycfg.UsageRow{}
		for i, m := range msgs {
			if !isFresh[dedupe[i]] {
				continue
			}
			delete(isFresh, dedupe[i]) // a batch id counts once, even twice in one read
			raw, _ := m.Values[proxycfg.UsageField].(string)
			var batch []proxycfg.UsageRow
			if err := json.Unmarshal([]byte(raw), &batch); err != nil {
				// A malformed entry can never succeed; keeping it would block
				// the group. It is recorded as processed and logged.
				a.log.Error("usage entry dropped: malformed", "id", m.ID, "err", err)
				continue
			}
			for _, r := range batch {
				if !validRow(&r) {
					a.log.Error("usage row dropped: invalid", "id", m.ID, "row", r)
					continue
				}
				merge(agg, &r)
				folded++
			}
		}
		return upsert(ctx, tx, agg)
	})
	if err != nil {
		return fmt.Errorf("commit usage: %w", err)
	}
	pipe := a.opts.Redis.Pipeline()
	pipe.XAck(ctx, stream, a.opts.Group, ids...)
	pipe.XDel(ctx, stream, ids...)
	if _, err := pipe.Exec(ctx); err != nil {
		// Committed but not acknowledged: the entries will be redelivered
		// and skipped as already recorded.
		return fmt.Errorf("ack usage entries: %w", err)
	}
	if a.opts.Observer != nil {
		a.opts.Observer.Committed(len(msgs), folded, entryTime(msgs[len(msgs)-1].ID))
	}
	return nil
}

// entryTime is when a stream entry was added: the milliseconds part of
// its id (zero for an id that is not Redis's).
func entryTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

type rowKey struct {
	minute                           int64
	tenant, api, consumer, key, plan string
	class                            int
}

func validRow(r *proxycfg.UsageRow) bool {
	return store.ValidID(r.TenantID) && r.APIID != "" && r.StatusClass >= 1 && r.StatusClass <= 5 &&
		r.Minute%60 == 0 && r.Requests > 0
}

func merge(agg map[rowKey]*proxycfg.UsageRow, r *proxycfg.UsageRow) {
	k := rowKey{r.Minute, r.TenantID, r.APIID, r.ConsumerID, r.KeyID, r.PlanID, r.StatusClass}
	cur := agg[k]
	if cur == nil {
		c := *r
		agg[k] = &c
		return
	}
	cur.Requests += r.Requests
	cur.BytesIn += r.BytesIn
	cur.BytesOut += r.BytesOut
	cur.LatencyMicros += r.LatencyMicros
	for i := range cur.Latency {
		cur.Latency[i] += r.Latency[i]
	}
}

func upsert(ctx context.Context, tx pgx.Tx, agg map[rowKey]*proxycfg.UsageRow) error {
	if len(agg) == 0 {
		return nil
	}
	// A fixed order of upserts keeps concurrent aggregators (several
	// control plane replicas) from deadlocking on each other's rows.
	keys := make([]rowKey, 0, len(agg))
	for k := range agg {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y rowKey) int {
		return cmp.Or(cmp.Compare(x.tenant, y.tenant), cmp.Compare(x.minute, y.minute), cmp.Compare(x.api, y.api),
			cmp.Compare(x.consumer, y.consumer), cmp.Compare(x.key, y.key), cmp.Compare(x.plan, y.plan),
			cmp.Compare(x.class, y.class))
	})
	b := &pgx.Batch{}
	for _, k := range keys {
		r := agg[k]
		b.Queue(`INSERT INTO usage_minutes (tenant_id, minute, api_id, consumer_id, key_id, plan_id, status_class,
			requests, bytes_in, bytes_out, latency_us, latency_hist)
			VALUES ($1, to_timestamp($2), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			ON CONFLICT (tenant_id, minute, api_id, consumer_id, key_id, plan_id, status_class) DO UPDATE SET
				requests = usage_minutes.requests + excluded.requests,
				bytes_in = usage_minutes.bytes_in + excluded.bytes_in,
				bytes_out = usage_minutes.bytes_out + excluded.bytes_out,
				latency_us = usage_minutes.latency_us + excluded.latency_us,
				latency_hist = usage_hist_add(usage_minutes.latency_hist, excluded.latency_hist)`,
			r.TenantID, r.Minute, r.APIID, r.ConsumerID, r.KeyID, r.PlanID, r.StatusClass,
			r.Requests, r.BytesIn, r.BytesOut, r.LatencyMicros, r.Latency[:])
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("upsert usage rollups: %w", err)
	}
	return nil
}

func (a *Aggregator) prune(ctx context.Context) error {
	if _, err := a.opts.DB.Exec(ctx, `DELETE FROM usage_entries WHERE processed_at < now() - $1::interval`,
		EntryRetention); err != nil {
		return fmt.Errorf("prune usage entries: %w", err)
	}
	return nil
}
