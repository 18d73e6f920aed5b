package usage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
)

// KeyQuota is a key's quota in the current billing period.
type KeyQuota struct {
	KeyID  string `json:"key_id"`
	PlanID string `json:"plan_id"`
	// Scope is "key" or "consumer" (all the consumer's keys of the plan
	// share the quota).
	Scope string `json:"scope"`
	// Limit is the quota per period; 0 means the plan has none (unlimited).
	Limit int64 `json:"limit"`
	// Period is "day" or "month" (calendar, UTC).
	Period      string    `json:"period"`
	PeriodStart time.Time `json:"period_start"`
	PeriodEnd   time.Time `json:"period_end"`
	// Used is the counter the proxies enforce. It may include a few tokens
	// workers leased for their next requests and have not used yet.
	Used int64 `json:"used"`
	// Left is Limit - Used (not below 0); meaningless without a limit.
	Left int64 `json:"left"`
}

// QuotaOf reads the quota state of a key of the tenant at now from the
// counter the workers keep in Redis.
func QuotaOf(ctx context.Context, db *pgxpool.Pool, rdb redis.UniversalClient, keys proxycfg.Keys,
	tenantID, keyID string, now time.Time) (KeyQuota, error) {
	if !store.ValidID(keyID) {
		return KeyQuota{}, fmt.Errorf("key quota: %w", fault.ErrNotFound)
	}
	var q KeyQuota
	var consumerID, subscriptionID string
	var ps, pe *time.Time
	err := db.QueryRow(ctx, `SELECT k.id::text, k.consumer_id::text, coalesce(k.subscription_id::text, ''), p.id::text,
		p.rate_limit_scope, p.quota_requests, p.quota_period, s.current_period_start, s.current_period_end
		FROM keys k JOIN plans p ON p.id = k.plan_id LEFT JOIN subscriptions s ON s.id = k.subscription_id
		WHERE k.tenant_id = $1 AND k.id = $2`, tenantID, keyID).
		Scan(&q.KeyID, &consumerID, &subscriptionID, &q.PlanID, &q.Scope, &q.Limit, &q.Period, &ps, &pe)
	if errors.Is(err, pgx.ErrNoRows) {
		return KeyQuota{}, fmt.Errorf("key quota: %w", fault.ErrNotFound)
	}
	if err != nil {
		return KeyQuota{}, fmt.Errorf("key quota: %w", err)
	}
	var id string
	id, q.PeriodStart, q.PeriodEnd = proxycfg.QuotaPeriod(q.Period, now)
	if ps != nil && pe != nil && !now.Before(*ps) && now.Before(*pe) {
		// The subscription's billing period, as the workers count it.
		id, q.PeriodStart, q.PeriodEnd = proxycfg.BillingPeriodID(ps.Unix()), ps.UTC(), pe.UTC()
	}
	if q.Limit == 0 {
		return q, nil
	}
	// Keys of a subscription share its counter (workers count the same subject).
	subject := proxycfg.LimitSubject(q.Scope, q.KeyID, subscriptionID, consumerID, q.PlanID)
	used, err := rdb.Get(ctx, keys.Quota(subject, id)).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return KeyQuota{}, fmt.Errorf("key quota: read counter: %w", err)
	}
	q.Used = used
	q.Left = max(q.Limit-used, 0)
	return q, nil
}
