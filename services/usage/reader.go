package usage

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// Reader bundles what the portals read of usage: rollups from Postgres and
// quota counters from Redis, so that web packages need neither client.
type Reader struct {
	DB    *pgxpool.Pool
	Redis redis.UniversalClient
	Keys  proxycfg.Keys
}

// Series is the package's Series on r's database.
func (r Reader) Series(ctx context.Context, q Query) ([]Point, error) { return Series(ctx, r.DB, q) }

// ByKey is the package's ByKey on r's database.
func (r Reader) ByKey(ctx context.Context, tenantID, consumerID string, from, to time.Time) ([]KeyTotal, error) {
	return ByKey(ctx, r.DB, tenantID, consumerID, from, to)
}

// TopConsumers is the package's TopConsumers on r's database.
func (r Reader) TopConsumers(ctx context.Context, q Query, n int) ([]ConsumerTotal, error) {
	return TopConsumers(ctx, r.DB, q, n)
}

// Quota is QuotaOf on r's database and Redis.
func (r Reader) Quota(ctx context.Context, tenantID, keyID string, now time.Time) (KeyQuota, error) {
	return QuotaOf(ctx, r.DB, r.Redis, r.Keys, tenantID, keyID, now)
}
