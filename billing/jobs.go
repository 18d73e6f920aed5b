package billing

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/services/catalog"
)

// Runner works through billing_jobs, the outbox of Stripe work written in
// the transactions of plan changes (catalog.EnqueuePlanSync and
// EnqueuePlanArchive). Any number of runners may run on control-plane
// replicas: each job is taken by one at a time (FOR UPDATE SKIP LOCKED),
// run inside that transaction, marked done in it, or put back with
// backoff. A crash rolls the attempt back; the next attempt repeats the
// same Stripe calls with the same idempotency keys.
type Runner struct {
	// Billing runs the jobs.
	Billing *Service
	// Poll is how often an idle runner looks for due jobs. If zero, 2s.
	Poll time.Duration
	// SweepEvery is how often the runner also looks for priced plans whose
	// current price has no synced version (plans changed before billing
	// was connected, or before the catalog queued syncs itself) and queues
	// them. If zero, 5 minutes; negative turns the sweep off.
	SweepEvery time.Duration
	// KeepEvents is how long stripe_events rows are kept (Stripe retries a
	// delivery for three days; older replays are refused as stale anyway).
	// If zero, 30 days.
	KeepEvents time.Duration
	// MaxBackoff caps the delay between attempts of a failing job. If
	// zero, 1 hour.
	MaxBackoff time.Duration
}

// Job is one row of billing_jobs.
type Job struct {
	ID        int64
	TenantID  string
	Kind      string
	Ref       string
	Attempts  int
	LastError string
}

// Run runs jobs until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	poll := r.Poll
	if poll <= 0 {
		poll = 2 * time.Second
	}
	sweepEvery := r.SweepEvery
	if sweepEvery == 0 {
		sweepEvery = 5 * time.Minute
	}
	var lastSweep time.Time
	for {
		if sweepEvery > 0 && time.Since(lastSweep) >= sweepEvery {
			lastSweep = time.Now()
			if _, err := r.Sweep(ctx); err != nil && ctx.Err() == nil {
				r.Billing.log().Error("billing: plan sweep failed", "err", err)
			}
			if _, err := r.PruneEvents(ctx); err != nil && ctx.Err() == nil {
				r.Billing.log().Error("billing: pruning webhook events failed", "err", err)
			}
		}
		if _, err := r.RunDue(ctx); err != nil && ctx.Err() == nil {
			r.Billing.log().Error("billing: jobs failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
}

// RunDue runs due jobs until none is left (or ctx ends) and returns how
// many it ran, failed ones included.
func (r *Runner) RunDue(ctx context.Context) (int, error) {
	n := 0
	for ctx.Err() == nil {
		ran, err := r.RunOne(ctx)
		if err != nil {
			return n, err
		}
		if !ran {
			return n, nil
		}
		n++
	}
	return n, ctx.Err()
}

// RunOne runs the oldest due job, if any. A failing job is not an error
// here: it is put back with backoff and its last_error recorded.
func (r *Runner) RunOne(ctx context.Context) (bool, error) {
	s := r.Billing
	ran := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var j Job
		err := tx.QueryRow(ctx, `SELECT id, tenant_id::text, kind, ref, attempts, last_error FROM billing_jobs
			WHERE done_at IS NULL AND run_at <= now() ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`).
			Scan(&j.ID, &j.TenantID, &j.Kind, &j.Ref, &j.Attempts, &j.LastError)
		if isNoRows(err) {
			return nil
		} else if err != nil {
			return fmt.Errorf("take billing job: %w", err)
		}
		ran = true
		// The job's own writes go in a savepoint, so that a failure rolls
		// them back and still records the attempt.
		jerr := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error { return s.runJob(ctx, sp, j) })
		if jerr == nil {
			_, err := tx.Exec(ctx, `UPDATE billing_jobs SET done_at = now(), attempts = attempts + 1, last_error = ''
				WHERE id = $1`, j.ID)
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		delay := r.backoff(j.Attempts + 1)
		s.log().Warn("billing: job failed", "job", j.ID, "kind", j.Kind, "ref", j.Ref, "attempt", j.Attempts+1,
			"retry_in", delay, "err", jerr)
		msg := jerr.Error()
		if len(msg) > 1000 {
			msg = msg[:1000]
		}
		_, err = tx.Exec(ctx, `UPDATE billing_jobs SET attempts = attempts + 1, last_error = $2,
			run_at = now() + $3::interval WHERE id = $1`, j.ID, msg, fmt.Sprintf("%d milliseconds", delay.Milliseconds()))
		return err
	})
	if err != nil {
		return ran, fmt.Errorf("run billing job: %w", err)
	}
	return ran, nil
}

// backoff is the delay before attempt n+1: 5s doubling, capped, ±20%.
func (r *Runner) backoff(attempts int) time.Duration {
	maxB := r.MaxBackoff
	if maxB <= 0 {
		maxB = time.Hour
	}
	d := 5 * time.Second
	for i := 1; i < attempts && d < maxB; i++ {
		d *= 2
	}
	d = min(d, maxB)
	return d - d/5 + time.Duration(rand.Int64N(int64(d/5)*2+1))
}

// JobCancelStripeSubscription cancels a Stripe subscription that bills a
// subscription Tollgate has ended (ref: "<account>/<subscription id>").
const JobCancelStripeSubscription = "stripe.cancel-subscription"

func (s *Service) runJob(ctx context.Context, tx pgx.Tx, j Job) error {
	switch j.Kind {
	case catalog.JobPlanSync:
		if !s.Enabled() {
			return unavailable(ReasonDisabled)
		}
		return s.syncPlan(ctx, tx, j.TenantID, j.Ref)
	case catalog.JobStripeArchive:
		return s.archiveRef(ctx, j.Ref)
	case JobCancelStripeSubscription:
		return s.cancelRef(ctx, j.Ref)
	}
	return fmt.Errorf("unknown billing job kind %q", j.Kind)
}

// Sweep queues a sync of every priced plan of a connected tenant whose
// newest synced version is older than its last change (or missing), and
// returns how many it queued. It is the safety net for plan changes whose
// transaction queued no job.
func (r *Runner) Sweep(ctx context.Context) (int, error) {
	s := r.Billing
	if !s.Enabled() {
		return 0, nil
	}
	n, after := 0, ""
	for {
		list, err := s.Catalog.ListPricedPlans(ctx, after, 500)
		if err != nil {
			return n, err
		}
		if len(list) == 0 {
			return n, nil
		}
		after = list[len(list)-1].PlanID
		for _, p := range list {
			var stale bool
			if err := s.DB.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM plan_prices pp JOIN plans pl ON pl.id = pp.plan_id
					WHERE pp.tenant_id = $1 AND pp.plan_id = $2 AND pp.synced_at >= pl.updated_at)`,
				p.TenantID, p.PlanID).Scan(&stale); err != nil {
				return n, fmt.Errorf("sweep plans: %w", err)
			}
			if !stale {
				continue
			}
			if err := s.inTx(ctx, func(tx pgx.Tx) error { return catalog.EnqueuePlanSync(ctx, tx, p.TenantID, p.PlanID) }); err != nil {
				return n, err
			}
			n++
		}
	}
}

// PruneEvents deletes the stripe_events rows older than KeepEvents and
// returns how many.
func (r *Runner) PruneEvents(ctx context.Context) (int64, error) {
	keep := r.KeepEvents
	if keep <= 0 {
		keep = 30 * 24 * time.Hour
	}
	tag, err := r.Billing.DB.Exec(ctx, `DELETE FROM stripe_events WHERE received_at < now() - $1::interval`,
		fmt.Sprintf("%d seconds", int64(keep/time.Second)))
	if err != nil {
		return 0, fmt.Errorf("prune stripe events: %w", err)
	}
	return tag.RowsAffected(), nil
}
