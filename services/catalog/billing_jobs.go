package catalog

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Kinds of billing_jobs, the outbox billing's job runner works through.
const (
	// JobPlanSync brings a plan's Stripe Product and Prices up to date with
	// its price (ref: the plan id).
	JobPlanSync = "plan.sync"
	// JobStripeArchive archives (active=false) a Product or Price of a
	// deleted plan (ref: "<account id>/<object id>").
	JobStripeArchive = "stripe.archive"
)

// EnqueuePlanSync queues, in the transaction of a plan's create or update,
// a sync of its Stripe Product and Prices. A waiting job of the same plan
// (one not running now) is enough: it reads the plan when it runs. Call it
// from CreatePlan and UpdatePlan; it does nothing for a tenant without a
// Stripe connection.
func EnqueuePlanSync(ctx context.Context, tx pgx.Tx, tenantID, planID string) error {
	var connected bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tenant_billing WHERE tenant_id = $1 AND deauthorized_at IS NULL)`,
		tenantID).Scan(&connected); err != nil {
		return fmt.Errorf("enqueue plan sync: %w", err)
	}
	if !connected {
		return nil
	}
	return enqueueBillingJob(ctx, tx, tenantID, JobPlanSync, planID)
}

// EnqueuePlanArchive queues, in the transaction that deletes a plan and
// before its DELETE (which drops the plan's plan_prices rows), the archiving
// of its Stripe Product and Prices. Subscriptions already billed on them go
// on in Stripe until they end.
func EnqueuePlanArchive(ctx context.Context, tx pgx.Tx, tenantID, planID string) error {
	rows, err := tx.Query(ctx, `SELECT DISTINCT tb.stripe_account_id || '/' || obj
		FROM plan_prices pp JOIN tenant_billing tb ON tb.tenant_id = pp.tenant_id,
		LATERAL unnest(ARRAY[pp.flat_price_id, pp.metered_price_id, pp.stripe_product_id]) AS obj
		WHERE pp.tenant_id = $1 AND pp.plan_id = $2 AND obj <> '' AND (pp.archived_at IS NULL OR obj LIKE 'prod_%')`,
		tenantID, planID)
	if err != nil {
		return fmt.Errorf("enqueue plan archive: %w", err)
	}
	refs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("enqueue plan archive: %w", err)
	}
	for _, ref := range refs {
		if err := enqueueBillingJob(ctx, tx, tenantID, JobStripeArchive, ref); err != nil {
			return err
		}
	}
	return nil
}

// enqueueBillingJob inserts a job unless one of the same kind and ref waits
// (is not locked by a running job runner).
func enqueueBillingJob(ctx context.Context, tx pgx.Tx, tenantID, kind, ref string) error {
	var id int64
	err := tx.QueryRow(ctx, `SELECT id FROM billing_jobs WHERE tenant_id = $1 AND kind = $2 AND ref = $3 AND done_at IS NULL
		LIMIT 1 FOR UPDATE SKIP LOCKED`, tenantID, kind, ref).Scan(&id)
	if err == nil {
		_, err = tx.Exec(ctx, `UPDATE billing_jobs SET run_at = least(run_at, now()) WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("enqueue billing job: %w", err)
		}
		return nil
	}
	if err != pgx.ErrNoRows {
		return fmt.Errorf("enqueue billing job: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO billing_jobs (tenant_id, kind, ref) VALUES ($1, $2, $3)`,
		tenantID, kind, ref); err != nil {
		return fmt.Errorf("enqueue billing job: %w", err)
	}
	return nil
}
