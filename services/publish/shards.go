package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/services/outbox"
)

// Publishing per tenant (proxycfg's shard.go has the Redis layout): a
// publish takes up to Batch tenants whose config_changes generation moved
// past the one the publisher handled, compiles each in one REPEATABLE READ
// transaction, and for each tenant either
//
//   - writes its shard (a key of its own, so every write is single-key on
//     a Cluster), or
//   - refuses it (proxycfg validation, compile, the config_bytes limit):
//     the tenant keeps its last good shard, and config_shards records the
//     error for the tenant to see (GET /v1/config/status, the portal), or
//   - drops it (the tenant is gone);
//
// then one script moves the index's entries of the published and dropped
// tenants and logs the publish under the next index sequence, one message
// names them on the config channel, and the database records what was
// done. A publish touches nothing of any other tenant: its cost is in
// proportion to the tenants it takes.
//
// Superseded shards: a tenant has at most its current and its previous
// shard in Redis. A publish deletes the tenant's shard before the previous
// one, and gives the previous one ShardGrace to live (a worker that read
// the index just before may still fetch it); once every heartbeating
// worker reports an index sequence at or past the publish, it is deleted
// at once.

// superseded are shards superseded by the publish at seq.
type superseded struct {
	seq  int64
	keys []string
}

// updateIndex moves the index's entries and logs the publish, atomically:
// KEYS[1] the index, KEYS[2] the change log; ARGV[1] the digest version,
// ARGV[2] the log's length, ARGV[3] the changed tenants (comma-separated),
// then pairs of tenant id and entry without its sequence ("" removes the
// tenant). It returns the new index sequence. A log whose last entry is
// past the sequence (the index was lost and started again) starts anew.
var updateIndex = redis.NewScript(`
local seq = redis.call('HINCRBY', KEYS[1], '` + proxycfg.IndexSeqField + `', 1)
redis.call('HSET', KEYS[1], '` + proxycfg.IndexDigestField + `', ARGV[1])
for i = 4, #ARGV, 2 do
  if ARGV[i+1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1] .. ' ' .. seq)
  end
end
local id = seq .. '-1'
local ok = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], id, '` + proxycfg.LogTenantsField + `', ARGV[3])
if type(ok) == 'table' and ok.err then
  redis.call('DEL', KEYS[2])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], id, '` + proxycfg.LogTenantsField + `', ARGV[3])
end
return seq`)

// pending is a tenant with a change to handle.
type pending struct {
	id                     string
	published, previous    int64 // its shards in Redis (0: none)
	publishedBytes         int   // the config bytes of the published one
	generation             int64 // compiled
	shard                  []byte
	capability, tenantSize int
	err                    error // refused
	gone                   bool
}

// publishShards publishes every pending tenant, a batch at a time. reset
// reports that Redis had lost the index (flushed or replaced): every tenant
// was published again, and key records must be rewritten too.
func (p *Publisher) publishShards(ctx context.Context) (reset bool, err error) {
	p.expireLegacy(ctx)
	seq, err := p.rdb.HGet(ctx, p.keys.ConfigIndex(), proxycfg.IndexSeqField).Result()
	switch {
	case errors.Is(err, redis.Nil) || seq == "":
		reset = true
	case err != nil:
		return false, fmt.Errorf("read config index: %w", err)
	}
	if reset {
		// Every tenant is published again, in batches like any change.
		if _, err := p.db.Exec(ctx, `INSERT INTO config_changes (tenant_id, generation)
			SELECT id, 1 FROM tenants ON CONFLICT (tenant_id) DO NOTHING`); err != nil {
			return false, fmt.Errorf("republish all: %w", err)
		}
		if _, err := p.db.Exec(ctx, `UPDATE config_changes SET published_generation = 0 WHERE published_generation <> 0`); err != nil {
			return false, fmt.Errorf("republish all: %w", err)
		}
		p.log.Info("redis holds no config index; publishing every tenant")
	}
	published := 0
	for {
		n, err := p.publishBatch(ctx, reset && published == 0)
		if err != nil {
			return false, err
		}
		published += n
		if n < p.batch {
			break
		}
	}
	return reset, nil
}

// publishBatch publishes up to p.batch pending tenants and returns how many
// it took. force publishes even with none (the index's first write).
func (p *Publisher) publishBatch(ctx context.Context, force bool) (int, error) {
	start := time.Now()
	rows, err := p.db.Query(ctx, `SELECT c.tenant_id::text, coalesce(s.generation, 0), coalesce(s.previous_generation, 0),
			coalesce(s.config_bytes, 0)
		FROM config_changes c LEFT JOIN config_shards s ON s.tenant_id = c.tenant_id
		WHERE c.generation > c.published_generation ORDER BY c.changed_at LIMIT $1`, p.batch)
	if err != nil {
		return 0, fmt.Errorf("read pending tenants: %w", err)
	}
	var batch []*pending
	var pd pending
	_, err = pgx.ForEachRow(rows, []any{&pd.id, &pd.published, &pd.previous, &pd.publishedBytes}, func() error {
		c := pd
		batch = append(batch, &c)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read pending tenants: %w", err)
	}
	if len(batch) == 0 && !force {
		return 0, nil
	}
	digest, err := p.compile(ctx, batch)
	if err != nil {
		return 0, err
	}
	compiled := time.Since(start)
	start = time.Now()
	seq, bytes, err := p.write(ctx, batch, digest)
	if err != nil {
		return 0, err
	}
	if err := p.record(ctx, batch, seq); err != nil {
		return 0, err
	}
	p.obs.SnapshotPublished(seq, bytes, compiled, time.Since(start))
	var good, refused, gone int
	for _, t := range batch {
		switch {
		case t.gone:
			gone++
		case t.err != nil:
			refused++
			p.log.Warn("tenant config refused; its last good shard keeps serving", "tenant", t.id,
				"generation", t.generation, "err", t.err)
		default:
			good++
		}
	}
	p.log.Info("published config", "seq", seq, "tenants", good, "refused", refused, "removed", gone, "bytes", bytes)
	return len(batch), nil
}

// compile compiles the batch's tenants from one consistent state of the
// database, and checks each: a tenant that fails gets its error. It
// returns the installation's digest key version.
func (p *Publisher) compile(ctx context.Context, batch []*pending) (digest int, err error) {
	now := time.Now().UTC()
	err = pgx.BeginTxFunc(ctx, p.db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, `SELECT digest_version FROM secret_versions`).Scan(&digest); err != nil {
				return fmt.Errorf("read digest key version: %w", err)
			}
			ids := make([]string, len(batch))
			for i, t := range batch {
				ids[i] = t.id
			}
			gens := map[string]int64{}
			rows, err := tx.Query(ctx, `SELECT tenant_id::text, generation FROM config_changes WHERE tenant_id = ANY($1::uuid[])`, ids)
			if err != nil {
				return fmt.Errorf("read generations: %w", err)
			}
			var id string
			var gen int64
			if _, err := pgx.ForEachRow(rows, []any{&id, &gen}, func() error { gens[id] = gen; return nil }); err != nil {
				return fmt.Errorf("read generations: %w", err)
			}
			for _, t := range batch {
				t.generation = gens[t.id]
				tn, ok, err := CompileTenant(ctx, tx, t.id)
				if err != nil {
					return err
				}
				if !ok {
					t.gone = true
					continue
				}
				t.err = p.check(ctx, tx, t, tn, now)
			}
			return nil
		})
	if err != nil {
		return 0, fmt.Errorf("compile: %w", err)
	}
	return digest, nil
}

// check validates a compiled tenant and encodes its shard; the error is
// the tenant's to see.
func (p *Publisher) check(ctx context.Context, q Querier, t *pending, tn proxycfg.Tenant, now time.Time) error {
	shard := proxycfg.NewShard(tn, t.generation, now)
	if err := shard.Validate(); err != nil {
		return fmt.Errorf("the compiled config is invalid: %w", err)
	}
	raw, err := json.Marshal(shard)
	if err != nil {
		return fmt.Errorf("encode the config: %w", err)
	}
	size, err := json.Marshal(tn)
	if err != nil {
		return fmt.Errorf("encode the config: %w", err)
	}
	t.tenantSize = len(size)
	lim, err := limits.For(ctx, q, p.limits, t.id)
	if err != nil {
		return fmt.Errorf("read limits: %w", err)
	}
	// Over the limit and larger than what the workers have: a tenant
	// over a lowered limit still publishes changes that do not grow it,
	// as the catalog still takes them.
	if max := lim.ConfigBytes; max > 0 && int64(t.tenantSize) > max && t.tenantSize > t.publishedBytes {
		return fmt.Errorf("the compiled config is %d bytes, over the limit of %d bytes (config_bytes)", t.tenantSize, max)
	}
	t.shard, t.capability = raw, shard.Capability
	return nil
}

// write puts the batch in Redis: the shards, the index with the change log,
// the announcement, and the expiry of superseded shards. It returns the
// index sequence and the bytes of the shards written.
func (p *Publisher) write(ctx context.Context, batch []*pending, digest int) (seq int64, bytes int, err error) {
	if len(batch) > 0 {
		pipe := p.rdb.Pipeline()
		for _, t := range batch {
			if t.shard != nil {
				pipe.Set(ctx, p.keys.ConfigShard(t.id, t.generation), t.shard, 0)
				bytes += len(t.shard)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, 0, fmt.Errorf("write shards: %w", err)
		}
	}
	args := []any{strconv.Itoa(digest), strconv.Itoa(proxycfg.LogLength), ""}
	var changed []string
	for _, t := range batch {
		switch {
		case t.gone:
			args = append(args, t.id, "")
		case t.err == nil:
			e := proxycfg.IndexEntry{Generation: t.generation, Capability: t.capability, Sum: proxycfg.ShardSum(t.shard)}
			entry := e.String()
			args = append(args, t.id, entry[:strings.LastIndexByte(entry, ' ')])
		default:
			continue
		}
		changed = append(changed, t.id)
	}
	args[2] = strings.Join(changed, ",")
	seq, err = updateIndex.Run(ctx, p.rdb, []string{p.keys.ConfigIndex(), p.keys.ConfigLog()}, args...).Int64()
	if err != nil {
		return 0, 0, fmt.Errorf("update config index: %w", err)
	}
	if err := p.rdb.Publish(ctx, p.keys.ConfigChannel(), proxycfg.ChannelMessage(seq, changed)).Err(); err != nil {
		return 0, 0, fmt.Errorf("announce config %d: %w", seq, err)
	}
	// Superseded shards: the one before the previous goes now, the
	// previous after its grace (or once every worker has read past seq).
	pipe := p.rdb.Pipeline()
	var drop []string
	for _, t := range batch {
		if t.err != nil {
			continue
		}
		if t.previous > 0 && t.previous != t.generation && t.previous != t.published {
			pipe.Del(ctx, p.keys.ConfigShard(t.id, t.previous))
		}
		if t.published > 0 && t.published != t.generation {
			k := p.keys.ConfigShard(t.id, t.published)
			pipe.Expire(ctx, k, p.grace)
			drop = append(drop, k)
		}
	}
	if len(drop) > 0 || pipe.Len() > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			p.log.Warn("superseded shards not expired", "err", err)
		}
	}
	if len(drop) > 0 {
		p.superseded = append(p.superseded, superseded{seq: seq, keys: drop})
	}
	return seq, bytes, nil
}

// record writes to the database what the publish at seq did with each
// tenant of the batch.
func (p *Publisher) record(ctx context.Context, batch []*pending, seq int64) error {
	return pgx.BeginTxFunc(ctx, p.db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var ids []string
		var gens []int64
		var okIDs, errIDs, goneIDs, errTexts []string
		var okGens, okPrev, errGens []int64
		var okCaps, okBytes []int32
		for _, t := range batch {
			ids, gens = append(ids, t.id), append(gens, t.generation)
			switch {
			case t.gone:
				goneIDs = append(goneIDs, t.id)
			case t.err != nil:
				errIDs, errGens, errTexts = append(errIDs, t.id), append(errGens, t.generation), append(errTexts, t.err.Error())
			default:
				prev := t.published
				if prev == t.generation {
					prev = t.previous
				}
				okIDs, okGens, okPrev = append(okIDs, t.id), append(okGens, t.generation), append(okPrev, prev)
				okCaps, okBytes = append(okCaps, int32(t.capability)), append(okBytes, int32(min(t.tenantSize, math.MaxInt32)))
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE config_changes c SET published_generation = u.gen
			FROM unnest($1::uuid[], $2::bigint[]) AS u(id, gen)
			WHERE c.tenant_id = u.id AND c.published_generation < u.gen`, ids, gens); err != nil {
			return fmt.Errorf("record handled generations: %w", err)
		}
		if len(okIDs) > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO config_shards AS s (tenant_id, generation, previous_generation, capability,
					config_bytes, seq, published_at)
				SELECT u.id, u.gen, u.prev, u.cap, u.bytes, $6, now()
				FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::int[], $5::int[]) AS u(id, gen, prev, cap, bytes)
				ON CONFLICT (tenant_id) DO UPDATE SET generation = EXCLUDED.generation,
					previous_generation = EXCLUDED.previous_generation, capability = EXCLUDED.capability,
					config_bytes = EXCLUDED.config_bytes, seq = EXCLUDED.seq, published_at = EXCLUDED.published_at,
					error = NULL, error_generation = NULL, error_at = NULL`,
				okIDs, okGens, okPrev, okCaps, okBytes, seq); err != nil {
				return fmt.Errorf("record published shards: %w", err)
			}
		}
		if len(errIDs) > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO config_shards AS s (tenant_id, error, error_generation, error_at)
				SELECT u.id, u.err, u.gen, now() FROM unnest($1::uuid[], $2::bigint[], $3::text[]) AS u(id, gen, err)
				ON CONFLICT (tenant_id) DO UPDATE SET error = EXCLUDED.error, error_generation = EXCLUDED.error_generation,
					error_at = EXCLUDED.error_at`, errIDs, errGens, errTexts); err != nil {
				return fmt.Errorf("record refused changes: %w", err)
			}
		}
		if len(goneIDs) > 0 {
			if _, err := tx.Exec(ctx, `DELETE FROM config_shards WHERE tenant_id = ANY($1::uuid[])`, goneIDs); err != nil {
				return fmt.Errorf("record removed tenants: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE config_state SET published_generation = $1`, seq); err != nil {
			return fmt.Errorf("record index sequence: %w", err)
		}
		return nil
	})
}

// dropSuperseded deletes the superseded shards every heartbeating worker
// has read past (their grace ends their life otherwise).
func (p *Publisher) dropSuperseded(ctx context.Context) {
	if len(p.superseded) == 0 {
		return
	}
	fleet, err := outbox.Fleet(ctx, p.rdb, p.keys)
	if err != nil {
		p.log.Warn("worker heartbeats unreadable; superseded shards wait for their grace", "err", err)
		return
	}
	read := int64(math.MaxInt64)
	for _, w := range fleet {
		read = min(read, w.Seq)
	}
	var keys []string
	kept := p.superseded[:0]
	for _, s := range p.superseded {
		if s.seq <= read {
			keys = append(keys, s.keys...)
			continue
		}
		kept = append(kept, s)
	}
	p.superseded = kept
	if len(keys) == 0 {
		return
	}
	// One key per DEL: shard keys live in different Cluster slots.
	pipe := p.rdb.Pipeline()
	for _, k := range keys {
		pipe.Del(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		p.log.Warn("superseded shards not deleted; their grace ends them", "err", err)
	}
	if len(p.superseded) > 10000 {
		// Workers that never read past: their grace ends the shards.
		p.superseded = p.superseded[len(p.superseded)-10000:]
	}
}

// expireLegacy gives the one-snapshot keys of the version before shards
// (tollgate:config:current and the snapshot it names) an hour to live, for
// workers of that version still running during an upgrade, and then they
// go. Once per publisher.
func (p *Publisher) expireLegacy(ctx context.Context) {
	if p.legacyDone {
		return
	}
	current := p.keys.Prefix + "tollgate:config:current"
	gen, err := p.rdb.Get(ctx, current).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return
	}
	p.legacyDone = true
	if gen == "" {
		return
	}
	pipe := p.rdb.Pipeline()
	pipe.Expire(ctx, current, time.Hour)
	pipe.Expire(ctx, p.keys.Prefix+"tollgate:config:snapshot:"+gen, time.Hour)
	if _, err := pipe.Exec(ctx); err != nil {
		p.log.Warn("legacy snapshot keys not expired", "err", err)
		p.legacyDone = false
	}
}
