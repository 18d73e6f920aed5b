package metering

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/billing/rating"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/store"
)

// producerLockID is the Postgres advisory lock (transaction scoped) that
// lets one producer at a time do the work across control-plane replicas.
// Correctness does not depend on it (see Producer), only wasted work does.
const producerLockID int64 = 0x746f6c6c6d657472 // "tollmetr"

// Defaults of ProducerOptions.
const (
	// DefaultSettle is how long after a window's end the producer waits
	// before reading it: workers flush their rollups every second and the
	// aggregator folds them within about a second more; a worker whose
	// clock is late, or a flush that failed once, lands later and goes
	// out as the window's next sequence.
	DefaultSettle = 15 * time.Second
	// DefaultProducerInterval is how often the producer looks for closed
	// windows.
	DefaultProducerInterval = 5 * time.Second
	// DefaultLookback is how far back every pass looks (late usage within
	// it goes out within seconds of its arrival).
	DefaultLookback = 15 * time.Minute
	// DefaultSweep is how far back a sweep looks, every SweepEvery (late
	// usage older than Lookback goes out at the next sweep; older than
	// Sweep, through Drift and Repair).
	DefaultSweep = 26 * time.Hour
	// DefaultSweepEvery is how often a pass is a sweep. The first pass
	// after a start always is.
	DefaultSweepEvery = 15 * time.Minute
)

// ProducerOptions configure a Producer. Zero values take the defaults.
type ProducerOptions struct {
	// DB holds usage_minutes and meter_reports; required.
	DB *pgxpool.Pool
	// Window is the usage window of one report, a whole number of minutes
	// aligned to the Unix epoch; 0 means DefaultWindow. It may grow later
	// (a larger window's rows are compared with every row whose window
	// starts inside it) but must not shrink while rows of the larger one
	// are within Sweep: a smaller window would not see them and report
	// their usage again (Drift shows it as over-reported).
	Window time.Duration
	// Settle is how long after a window's end it is first read; 0 means
	// DefaultSettle.
	Settle time.Duration
	// Interval is the time between passes; 0 means DefaultProducerInterval.
	Interval time.Duration
	// Lookback is how far back a pass reads; 0 means DefaultLookback.
	Lookback time.Duration
	// Sweep is how far back a sweep reads; 0 means DefaultSweep.
	Sweep time.Duration
	// SweepEvery is how often a pass is a sweep; 0 means DefaultSweepEvery.
	SweepEvery time.Duration
	// Logger receives errors; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests move it.
	Now func() time.Time
	// Produced, if set, is called after a pass wrote pending rows (the
	// Runner uses it to wake the Sender).
	Produced func()
}

// Producer writes the reports of closed usage windows into meter_reports.
// Any number may run (one per control-plane replica): a pass takes an
// advisory lock and skips when another replica holds it; and even without
// it, two producers write the same rows (a row's key is its subscription,
// window and sequence, its value the difference from the rows before it,
// and the first insert of a key wins), so a crash, a rerun or a race never
// reports usage twice.
type Producer struct {
	opts ProducerOptions
	log  *slog.Logger
	// noLock makes passes skip the advisory lock (tests of the race).
	noLock bool
}

// NewProducer checks opts and returns a Producer; Run starts it.
func NewProducer(opts ProducerOptions) (*Producer, error) {
	if opts.DB == nil {
		return nil, errors.New("metering producer: a database is required")
	}
	if opts.Window == 0 {
		opts.Window = DefaultWindow
	}
	if opts.Window < time.Minute || opts.Window%time.Minute != 0 || opts.Window > 24*time.Hour {
		return nil, fmt.Errorf("metering producer: window %s must be a whole number of minutes up to a day", opts.Window)
	}
	if opts.Settle <= 0 {
		opts.Settle = DefaultSettle
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultProducerInterval
	}
	if opts.Lookback <= 0 {
		opts.Lookback = DefaultLookback
	}
	if opts.Sweep <= 0 {
		opts.Sweep = DefaultSweep
	}
	if opts.Sweep < opts.Lookback {
		opts.Sweep = opts.Lookback
	}
	if opts.SweepEvery <= 0 {
		opts.SweepEvery = DefaultSweepEvery
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Producer{opts: opts, log: opts.Logger}, nil
}

// Produced counts what one pass wrote.
type Produced struct {
	// Reports is the number of rows written (pending and expired).
	Reports int
	// Expired is how many of them were too old for Stripe.
	Expired int
	// Requests is the sum of the rows' values.
	Requests int64
	// Skipped is true when another producer held the lock.
	Skipped bool
}

// Run makes passes every Interval, and as soon as a window has closed
// (its end plus Settle), until ctx is cancelled, and returns ctx's error.
// The first pass, and one every SweepEvery, is a sweep.
// Failures are logged and retried with backoff.
func (p *Producer) Run(ctx context.Context) error {
	var lastSweep time.Time
	backoff := time.Second
	for ctx.Err() == nil {
		now := p.opts.Now()
		look := p.opts.Lookback
		sweep := now.Sub(lastSweep) >= p.opts.SweepEvery
		if sweep {
			look = p.opts.Sweep
		}
		res, err := p.Produce(ctx, "", now.Add(-look), now, false)
		wait := p.opts.Interval
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			p.log.Error("metering producer", "err", err, "retry_in", backoff)
			wait, backoff = backoff, min(backoff*2, time.Minute)
		default:
			backoff = time.Second
			if sweep && !res.Skipped {
				lastSweep = now
			}
			if res.Expired > 0 {
				p.log.Warn("metering producer: usage windows older than Stripe accepts were flagged expired",
					"count", res.Expired)
			}
			if res.Reports > res.Expired && p.opts.Produced != nil {
				p.opts.Produced()
			}
		}
		if err == nil {
			// Wake up when the open window closes, not up to an Interval
			// later: the lag of a window is then its settle delay plus
			// the sending.
			closes := windowStart(now.Add(-p.opts.Settle), p.opts.Window).Add(p.opts.Window + p.opts.Settle)
			if d := closes.Sub(p.opts.Now()) + 10*time.Millisecond; d > 0 && d < wait {
				wait = d
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	return ctx.Err()
}

// Repair makes one pass over the windows in [from, to) of one tenant (all
// tenants if tenantID is ""), waiting for the lock if another producer
// holds it: what Drift found missing is written (pending, or expired when
// too old for Stripe), and the Sender sends it.
func (p *Producer) Repair(ctx context.Context, tenantID string, from, to time.Time) (Produced, error) {
	res, err := p.Produce(ctx, tenantID, from, to, true)
	if err == nil && res.Reports > res.Expired && p.opts.Produced != nil {
		p.opts.Produced()
	}
	return res, err
}

// target is where a metered subscription's usage goes.
type target struct {
	tenant, account, customer, event string
}

// Produce makes one pass over the closed windows in [from, to) (from and
// to are widened and narrowed to whole windows; windows not closed at Now
// minus Settle are left out) for one tenant, or all when tenantID is "".
// With wait false it skips (Produced.Skipped) when another producer holds
// the lock; with wait true it waits for it.
func (p *Producer) Produce(ctx context.Context, tenantID string, from, to time.Time, wait bool) (Produced, error) {
	var tenant any // nil: every tenant
	if tenantID != "" {
		if !store.ValidID(tenantID) {
			return Produced{}, nil
		}
		tenant = tenantID
	}
	now := p.opts.Now()
	from = windowStart(from, p.opts.Window)
	if closed := windowStart(now.Add(-p.opts.Settle), p.opts.Window); to.After(closed) {
		to = closed
	}
	to = windowStart(to.Add(p.opts.Window-time.Second), p.opts.Window) // round up to a whole window
	if !to.After(from) {
		return Produced{}, nil
	}
	var res Produced
	err := store.InTx(ctx, p.opts.DB, func(tx pgx.Tx) error {
		if !p.noLock {
			locked := true
			if wait {
				if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, producerLockID); err != nil {
					return fmt.Errorf("producer lock: %w", err)
				}
			} else if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, producerLockID).Scan(&locked); err != nil {
				return fmt.Errorf("producer lock: %w", err)
			}
			if !locked {
				res.Skipped = true
				return nil
			}
		}
		var err error
		res, err = p.produce(ctx, tx, tenant, from, to, now)
		return err
	})
	if err != nil {
		return Produced{}, fmt.Errorf("metering producer: %w", err)
	}
	return res, nil
}

// uuidPattern matches the key ids this control plane issues; usage under
// anything else (a malformed row) is not cast, and so not billed.
const uuidPattern = `^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`

// produce compares, in the database, the requests served per subscription
// and window with the reports the windows hold, and writes the
// differences. Only the windows with a difference leave Postgres, so a
// sweep over a day of usage costs a scan, not a transfer.
func (p *Producer) produce(ctx context.Context, tx pgx.Tx, tenant any, from, to, now time.Time) (Produced, error) {
	// served: the requests (rating.Billable) per key and window of the
	// tenants with a connected account (the usage primary key, tenant_id
	// then minute, serves the range per tenant), then per subscription.
	// reported: the sum of every row whose window starts inside the window
	// (a window that grew covers the smaller ones before it). The next
	// sequence follows the last one at the window's own start.
	rows, err := tx.Query(ctx, `WITH usage AS (
			SELECT um.tenant_id, um.key_id, date_bin($1::interval, um.minute, 'epoch'::timestamptz) AS ws,
				sum(um.requests)::bigint AS n
			FROM tenant_billing tb
			JOIN usage_minutes um ON um.tenant_id = tb.tenant_id AND um.minute >= $2 AND um.minute < $3
			WHERE tb.deauthorized_at IS NULL AND ($4::uuid IS NULL OR tb.tenant_id = $4)
				AND um.key_id <> '' AND um.status_class = ANY($5)
			GROUP BY 1, 2, 3
		), served AS (
			SELECT k.subscription_id AS sub, u.ws, sum(u.n)::bigint AS n
			FROM usage u
			JOIN keys k ON k.tenant_id = u.tenant_id
				AND k.id = CASE WHEN u.key_id ~ $6 THEN u.key_id::uuid END
			WHERE k.subscription_id IS NOT NULL
			GROUP BY 1, 2
		), reported AS (
			SELECT mr.subscription_id AS sub, date_bin($1::interval, mr.window_start, 'epoch'::timestamptz) AS ws,
				sum(mr.value)::bigint AS n
			FROM meter_reports mr
			WHERE mr.subscription_id IN (SELECT sub FROM served) AND mr.window_start >= $2 AND mr.window_start < $3
			GROUP BY 1, 2
		)
		SELECT s.sub::text, s.ws, s.n - coalesce(r.n, 0),
			(SELECT max(seq) FROM meter_reports m WHERE m.subscription_id = s.sub AND m.window_start = s.ws)
		FROM served s LEFT JOIN reported r ON r.sub = s.sub AND r.ws = s.ws
		WHERE s.n > coalesce(r.n, 0)
		ORDER BY 1, 2`,
		p.opts.Window, from, to, tenant, rating.BillableClasses(), uuidPattern)
	if err != nil {
		return Produced{}, fmt.Errorf("compare served and reported usage: %w", err)
	}
	type missing struct {
		sub     string
		start   time.Time
		n       int64
		lastSeq *int
	}
	var todo []missing
	subSet := map[string]bool{}
	for rows.Next() {
		var m missing
		if err := rows.Scan(&m.sub, &m.start, &m.n, &m.lastSeq); err != nil {
			rows.Close()
			return Produced{}, fmt.Errorf("compare served and reported usage: %w", err)
		}
		todo = append(todo, m)
		subSet[m.sub] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Produced{}, fmt.Errorf("compare served and reported usage: %w", err)
	}
	if len(todo) == 0 {
		return Produced{}, nil
	}
	subIDs := make([]string, 0, len(subSet))
	for s := range subSet {
		subIDs = append(subIDs, s)
	}
	targets, err := meterTargets(ctx, tx, subIDs)
	if err != nil {
		return Produced{}, err
	}
	var ins inserts
	expireBefore := now.Add(-MaxEventAge)
	for _, m := range todo {
		t, ok := targets[m.sub]
		if !ok {
			continue // not metered (Drift says why)
		}
		seq := 0
		if m.lastSeq != nil {
			seq = *m.lastSeq + 1
		}
		start := m.start.UTC()
		status, why := StatusPending, ""
		if start.Before(expireBefore) {
			status, why = StatusExpired, "window older than Stripe accepts for meter events (35 days)"
		}
		ins.add(t.tenant, m.sub, t.account, t.customer, t.event, start, seq, m.n,
			Identifier(t.tenant, m.sub, t.account, t.customer, t.event, start, seq), status, why)
	}
	return ins.exec(ctx, tx)
}

// meterTargets returns where the usage of each of subs goes, for those
// that are metered: a connected account that is not deauthorized, a Stripe
// customer for the subscription's app, and a price version with a meter
// and a per-request price. The version is the subscription's plan_version,
// or the plan's newest synced one when it has none recorded: the rule of
// billing.SubscriptionMeterTarget, for many subscriptions at once (a test
// checks that the two agree).
func meterTargets(ctx context.Context, tx pgx.Tx, subs []string) (map[string]target, error) {
	rows, err := tx.Query(ctx, `SELECT s.id::text, s.tenant_id::text, tb.stripe_account_id, bc.stripe_customer_id,
			pp.meter_event_name, pp.price
		FROM subscriptions s
		JOIN tenant_billing tb ON tb.tenant_id = s.tenant_id AND tb.deauthorized_at IS NULL
		JOIN billing_customers bc ON bc.app_id = s.app_id AND bc.tenant_id = s.tenant_id
		JOIN LATERAL (SELECT meter_event_name, price FROM plan_prices
			WHERE plan_id = s.plan_id AND synced_at IS NOT NULL
			AND (s.plan_version IS NULL OR version = s.plan_version)
			ORDER BY version DESC LIMIT 1) pp ON true
		WHERE s.id = ANY($1::uuid[]) AND pp.meter_event_name <> ''`, subs)
	if err != nil {
		return nil, fmt.Errorf("read meter targets: %w", err)
	}
	defer rows.Close()
	out := map[string]target{}
	for rows.Next() {
		var (
			sub string
			t   target
			raw []byte
		)
		if err := rows.Scan(&sub, &t.tenant, &t.account, &t.customer, &t.event, &raw); err != nil {
			return nil, fmt.Errorf("read meter targets: %w", err)
		}
		if !metered(raw) {
			continue
		}
		out[sub] = t
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read meter targets: %w", err)
	}
	return out, nil
}

// metered reports whether a plan version's price (plan_prices.price) has a
// per-request part.
func metered(raw []byte) bool {
	var p catalog.Price
	if err := json.Unmarshal(raw, &p); err != nil {
		return false
	}
	return p.PerRequest() != nil
}

// inserts collects meter_reports rows to write in one statement.
type inserts struct {
	tenant, sub, account, customer, event, ident, status, why []string
	start                                                     []time.Time
	seq                                                       []int32
	value                                                     []int64
}

func (in *inserts) add(tenant, sub, account, customer, event string, start time.Time, seq int, value int64, ident, status, why string) {
	in.tenant = append(in.tenant, tenant)
	in.sub = append(in.sub, sub)
	in.account = append(in.account, account)
	in.customer = append(in.customer, customer)
	in.event = append(in.event, event)
	in.start = append(in.start, start)
	in.seq = append(in.seq, int32(seq))
	in.value = append(in.value, value)
	in.ident = append(in.ident, ident)
	in.status = append(in.status, status)
	in.why = append(in.why, why)
}

// exec writes the rows; a row whose (subscription, window, seq) or
// identifier exists already is left out (another producer wrote it first).
func (in *inserts) exec(ctx context.Context, tx pgx.Tx) (Produced, error) {
	var res Produced
	if len(in.sub) == 0 {
		return res, nil
	}
	rows, err := tx.Query(ctx, `INSERT INTO meter_reports (tenant_id, subscription_id, stripe_account, stripe_customer,
			event_name, window_start, seq, value, identifier, status, last_error)
		SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
			$7::int[], $8::bigint[], $9::text[], $10::text[], $11::text[])
		ON CONFLICT DO NOTHING
		RETURNING status, value`,
		in.tenant, in.sub, in.account, in.customer, in.event, in.start, in.seq, in.value, in.ident, in.status, in.why)
	if err != nil {
		return res, fmt.Errorf("write meter reports: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			status string
			value  int64
		)
		if err := rows.Scan(&status, &value); err != nil {
			return res, fmt.Errorf("write meter reports: %w", err)
		}
		res.Reports++
		res.Requests += value
		if status == StatusExpired {
			res.Expired++
		}
	}
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("write meter reports: %w", err)
	}
	return res, nil
}
