package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/outbox"
	"github.com/tollgate/tollgate/services/token"
)

// What each tenant gets: apisPerTenant APIs, each serving *routesPerAPI
// routes (1: its base path, as an API without an imported document serves
// every path under it; more: an imported OpenAPI document of that many
// operations).
const apisPerTenant = 10

// routeDoc is the OpenAPI document every API imports when *routesPerAPI is
// more than 1: that many operations, relative to the API's base path.
func routeDoc() []byte {
	paths := map[string]any{}
	for i := range *routesPerAPI {
		op := map[string]any{"operationId": fmt.Sprintf("op%d", i),
			"parameters": []any{map[string]any{"name": "id", "in": "path", "required": true, "schema": map[string]any{"type": "string"}}},
			"responses":  map[string]any{"200": map[string]any{"description": "ok"}}}
		paths[fmt.Sprintf("/r%d/{id}", i)] = map[string]any{"get": op}
	}
	raw, _ := json.Marshal(map[string]any{"openapi": "3.0.3", "info": map[string]any{"title": "bench", "version": "1"}, "paths": paths})
	return raw
}

// grow seeds tenants up to n through /v1 (12 in flight), then their bulk
// keys, and waits for the platform to settle.
func (b *bench) grow(ctx context.Context, n, keysPerTenant int) (*measurement, error) {
	m := &measurement{tenants: n}
	from := len(b.tenants)
	if n > from {
		start := time.Now()
		next := make(chan int)
		var mu sync.Mutex
		var firstErr error
		var calls atomic.Int64
		var done atomic.Int64
		seeded := make([]*tenant, n-from)
		var wg sync.WaitGroup
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		for range *inFlight {
			wg.Go(func() {
				for i := range next {
					t, err := b.seedTenant(sctx, from+i, &calls)
					if err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						cancel()
						continue
					}
					seeded[i] = t
					d := done.Add(1)
					if d%1000 == 0 {
						b.analyze(sctx)
					}
					if d%250 == 0 {
						log.Printf("seeded %d of %d tenants (%.0f calls/s)", from+int(d), n,
							float64(calls.Load())/time.Since(start).Seconds())
					}
				}
			})
		}
	feed:
		for i := range n - from {
			select {
			case next <- i:
			case <-sctx.Done():
				break feed
			}
		}
		close(next)
		wg.Wait()
		if firstErr != nil {
			return nil, firstErr
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		took := time.Since(start)
		b.tenants = append(b.tenants, seeded...)
		m.seedCalls, m.seedRate = int(calls.Load()), float64(calls.Load())/took.Seconds()
		log.Printf("seeded %d tenants through /v1: %d calls in %s, %.0f calls/s", n-from, calls.Load(), took.Round(time.Millisecond), m.seedRate)
		if keysPerTenant > 1 {
			kstart := time.Now()
			nk, err := b.bulkKeys(ctx, b.tenants[from:], keysPerTenant-1)
			if err != nil {
				return nil, err
			}
			m.bulkKeys, m.bulkKeysTook = nk, time.Since(kstart)
			log.Printf("wrote %d keys in bulk in %s", nk, m.bulkKeysTook.Round(time.Millisecond))
		}
	}
	b.analyze(ctx)
	start := time.Now()
	settled, err := b.settle(ctx, 60*time.Minute)
	if err != nil {
		return nil, err
	}
	// What autovacuum would have done by now: the key outbox's
	// published rows leave dead entries in its index of unpublished
	// ones, which the publisher's every poll would otherwise wade
	// through (a core of Postgres after 1,000,000 bulk keys).
	vstart := time.Now()
	if _, err := b.db.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		return nil, fmt.Errorf("vacuum: %w", err)
	}
	log.Printf("vacuumed in %s", time.Since(vstart).Round(time.Millisecond))
	m.settleTook = time.Since(start)
	log.Printf("settled in %s (publisher and workers caught up)", settled.Round(time.Millisecond))
	return m, nil
}

// analyze updates the planner's statistics of the bench's database, as
// autovacuum does in production: the machine's Postgres may run without
// it (CI settings), and statistics of the tables as they were when almost
// empty make the planner scan whole tables where an index serves.
func (b *bench) analyze(ctx context.Context) {
	if _, err := b.db.Exec(ctx, `ANALYZE`); err != nil && ctx.Err() == nil {
		log.Printf("analyze: %v", err)
	}
}

// seedTenant makes tenant i with its objects through /v1.
func (b *bench) seedTenant(ctx context.Context, i int, calls *atomic.Int64) (*tenant, error) {
	t := &tenant{slug: fmt.Sprintf("t%05d", i)}
	call := func(method, path, tok string, body any, want int, out any) error {
		calls.Add(1)
		return b.call(ctx, method, path, tok, body, want, out)
	}
	var created struct {
		Tenant struct {
			ID string `json:"id"`
		} `json:"tenant"`
		AdminToken string `json:"admin_token"`
	}
	if err := call("POST", "/v1/tenants", b.operator, map[string]any{"name": "Tenant " + t.slug, "slug": t.slug}, 201, &created); err != nil {
		return nil, err
	}
	t.id, t.token = created.Tenant.ID, created.AdminToken
	var obj struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	if err := call("POST", "/v1/upstreams", t.token, map[string]any{"name": "backend", "algorithm": "round_robin",
		"targets": []map[string]any{{"url": b.upstream, "weight": 1}}}, 201, &obj); err != nil {
		return nil, err
	}
	t.upstream = obj.ID
	doc := routeDoc()
	for a := range apisPerTenant {
		if err := call("POST", "/v1/apis", t.token, map[string]any{"name": fmt.Sprintf("API %d", a), "slug": fmt.Sprintf("api%d", a),
			"base_path": fmt.Sprintf("/api%d", a), "upstream_id": t.upstream, "auth": "key"}, 201, &obj); err != nil {
			return nil, err
		}
		t.apis = append(t.apis, obj.ID)
		if *routesPerAPI > 1 {
			if err := call("PUT", "/v1/apis/"+obj.ID+"/openapi", t.token, doc, 200, nil); err != nil {
				return nil, err
			}
		}
	}
	if err := call("POST", "/v1/plans", t.token, map[string]any{"name": "Starter", "api_ids": t.apis}, 201, &obj); err != nil {
		return nil, err
	}
	t.plan = obj.ID
	if err := call("POST", "/v1/consumers", t.token, map[string]any{"name": "Consumer", "email": "c@" + t.slug + ".example.com"}, 201, &obj); err != nil {
		return nil, err
	}
	t.consumer = obj.ID
	if err := call("POST", "/v1/keys", t.token, map[string]any{"consumer_id": t.consumer, "plan_id": t.plan}, 201, &obj); err != nil {
		return nil, err
	}
	t.key = obj.Key
	return t, nil
}

// bulkKeys writes per keys for each tenant (its consumer, its plan)
// straight into Postgres, as the catalog writes a key made through /v1:
// the row in keys (HMAC digest under the installation's digest key, the
// prefix) and its record in the key outbox, with a notification, so that
// the publisher copies the records to Redis as it copies any key's. No
// audit entries. It returns how many keys it wrote.
func (b *bench) bulkKeys(ctx context.Context, ts []*tenant, per int) (int, error) {
	const batch = 20000
	total := 0
	type row struct{ id, tenant, consumer, plan, digest, prefix string }
	var rows []row
	flush := func() error {
		if len(rows) == 0 {
			return nil
		}
		err := pgx.BeginTxFunc(ctx, b.db, pgx.TxOptions{}, func(tx pgx.Tx) error {
			src := make([][]any, len(rows))
			digests := make([]string, len(rows))
			for i, r := range rows {
				src[i] = []any{r.id, r.tenant, r.consumer, r.plan, r.digest, r.prefix}
				digests[i] = r.digest
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"keys"}, []string{"id", "tenant_id", "consumer_id", "plan_id", "digest", "prefix"},
				pgx.CopyFromRows(src)); err != nil {
				return fmt.Errorf("copy keys: %w", err)
			}
			// The record effectiveRecord makes of an active key of an
			// active consumer without a subscription.
			if _, err := tx.Exec(ctx, `INSERT INTO key_outbox (digest, record)
				SELECT digest, jsonb_build_object('id', id::text, 'tenant_id', tenant_id::text, 'consumer_id', consumer_id::text,
					'plan_id', plan_id::text, 'status', '`+proxycfg.KeyActive+`')
				FROM keys WHERE digest = ANY($1) ORDER BY tenant_id, id`, digests); err != nil {
				return fmt.Errorf("queue key records: %w", err)
			}
			_, err := tx.Exec(ctx, `SELECT pg_notify($1, 'key')`, outbox.Channel)
			return err
		})
		if err != nil {
			return err
		}
		total += len(rows)
		rows = rows[:0]
		return nil
	}
	for ti, t := range ts {
		for k := range per {
			secret, err := token.New(catalog.KeyKind)
			if err != nil {
				return total, err
			}
			if ti == len(ts)-1 && k == 0 {
				b.sampleKey = &sampleKey{slug: t.slug, key: secret}
			}
			rows = append(rows, row{id: uuid4(), tenant: t.id, consumer: t.consumer, plan: t.plan,
				digest: proxycfg.Digest(b.digest, secret), prefix: token.Prefix(secret)})
			if len(rows) == batch {
				if err := flush(); err != nil {
					return total, err
				}
				if total%200000 == 0 {
					log.Printf("bulk keys: %d", total)
				}
			}
		}
	}
	return total, flush()
}

func uuid4() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := fmt.Sprintf("%x", u[:])
	return strings.Join([]string{h[:8], h[8:12], h[12:16], h[16:20], h[20:]}, "-")
}
