package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/services/outbox"
	"github.com/tollgate/tollgate/services/store"
)

// Plan limits.
const (
	MaxRatePeriodSeconds = 86_400
	MaxPlanAPIs          = 1000
)

// Quota periods.
const (
	PeriodDay   = "day"
	PeriodMonth = "month"
)

var currencyRE = regexp.MustCompile(`^[a-z]{3}$`)

// RateLimit allows Requests per PerSeconds; Requests 0 means unlimited.
// The window slides: no interval of PerSeconds admits more than Requests.
type RateLimit struct {
	Requests   int64 `json:"requests"`
	PerSeconds int64 `json:"per_seconds"`
	// Burst, when > 0, also caps any interval of PerSeconds*Burst/Requests
	// at Burst requests (it must be below Requests); 0 means no cap.
	Burst int64 `json:"burst"`
	// Scope is whose requests share a plan's limits (rate, quota and
	// concurrency): "key" (default, each key on its own) or "consumer" (all
	// the consumer's keys of the plan together). APIs have no scope.
	Scope string `json:"scope,omitempty"`
}

// Rate limit scopes.
const (
	ScopeKey      = "key"
	ScopeConsumer = "consumer"
)

// MaxConcurrency bounds a plan's concurrency limit.
const MaxConcurrency = 100_000

// checkRateLimit validates rl under the field prefix (e.g. "rate_limit").
func checkRateLimit(v *fault.ValidationError, field string, rl RateLimit) {
	if rl.Requests < 0 {
		v.Add(field+".requests", "must not be negative (0 means unlimited)")
	}
	if rl.Requests > 0 && (rl.PerSeconds < 1 || rl.PerSeconds > MaxRatePeriodSeconds) {
		v.Add(field+".per_seconds", "must be between 1 and %d when requests is set", MaxRatePeriodSeconds)
	}
	if rl.Requests == 0 && rl.PerSeconds < 0 {
		v.Add(field+".per_seconds", "must not be negative")
	}
	if rl.Burst < 0 || (rl.Burst > 0 && rl.Burst >= rl.Requests) {
		v.Add(field+".burst", "must be between 0 (no cap) and requests-1")
	}
}

// Quota allows Requests per Period (day or month, default month); Requests 0 means unlimited.
type Quota struct {
	Requests int64  `json:"requests"`
	Period   string `json:"period"`
}

// Price is what a plan costs: a flat amount per billing period, a price per
// request, or both (DESIGN.md "Billing"). Amounts are in the currency's
// minor unit, like Stripe's unit_amount and unit_amount_decimal.
type Price struct {
	// AmountCents is the flat recurring amount (JSON "amount"; the older
	// name "amount_cents" is accepted too).
	AmountCents int64 `json:"amount"`
	// Currency is an ISO 4217 code, stored lowercase ("usd").
	Currency string `json:"currency"`
	// Interval is the billing period: month (default), year, week or day.
	Interval string `json:"interval,omitempty"`
	// PerRequestDecimal is the price of one request in the minor unit as a
	// decimal string ("0.05" is five hundredths of a cent); "" means none.
	PerRequestDecimal string `json:"per_request_decimal,omitempty"`
	// IncludedRequests are free per period before per-request pricing
	// starts (a graduated price's first tier); every request is still
	// reported to Stripe.
	IncludedRequests int64 `json:"included_requests,omitempty"`
	// centsAlias records that the input named the amount amount_cents, so
	// that errors name the field the caller sent.
	centsAlias bool
}

// priceJSON is Price's wire form, with the amount_cents alias.
type priceJSON struct {
	Amount            *int64 `json:"amount"`
	AmountCents       *int64 `json:"amount_cents"`
	Currency          string `json:"currency"`
	Interval          string `json:"interval"`
	PerRequestDecimal string `json:"per_request_decimal"`
	IncludedRequests  int64  `json:"included_requests"`
}

// UnmarshalJSON reads a price, taking amount_cents as an alias of amount,
// and refuses unknown fields.
func (p *Price) UnmarshalJSON(b []byte) error {
	var w priceJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	*p = Price{Currency: w.Currency, Interval: w.Interval, PerRequestDecimal: w.PerRequestDecimal,
		IncludedRequests: w.IncludedRequests}
	switch {
	case w.Amount != nil:
		p.AmountCents = *w.Amount
	case w.AmountCents != nil:
		p.AmountCents, p.centsAlias = *w.AmountCents, true
	}
	return nil
}

// MarshalJSON writes a price with both amount and its alias amount_cents.
func (p Price) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Amount            int64  `json:"amount"`
		AmountCents       int64  `json:"amount_cents"`
		Currency          string `json:"currency"`
		Interval          string `json:"interval"`
		PerRequestDecimal string `json:"per_request_decimal,omitempty"`
		IncludedRequests  int64  `json:"included_requests"`
	}{p.AmountCents, p.AmountCents, p.Currency, p.Interval, p.PerRequestDecimal, p.IncludedRequests})
}

// PerRequest returns the per-request price as a rational number of minor
// units, or nil when the price has none.
func (p Price) PerRequest() *big.Rat {
	if p.PerRequestDecimal == "" {
		return nil
	}
	r, ok := new(big.Rat).SetString(p.PerRequestDecimal)
	if !ok || r.Sign() <= 0 {
		return nil
	}
	return r
}

// Price intervals.
var priceIntervals = map[string]bool{"day": true, "week": true, "month": true, "year": true}

var decimalRE = regexp.MustCompile(`^[0-9]{1,8}(\.[0-9]{1,12})?$`)

// PlanInput is what a caller may set on a plan.
type PlanInput struct {
	Name      string    `json:"name"`
	RateLimit RateLimit `json:"rate_limit"`
	Quota     Quota     `json:"quota"`
	// APIIDs are the tenant's APIs that keys of this plan may call.
	APIIDs []string `json:"api_ids"`
	// Price is nil for a free plan.
	Price *Price `json:"price"`
	// Concurrency is the most requests in flight at once per key (or
	// consumer, by rate_limit.scope) across all workers; 0 means no limit.
	Concurrency int64 `json:"concurrency"`
	// Public offers the plan in the tenant's developer portal.
	Public bool `json:"public"`
	// ApprovalRequired makes a developer's subscription wait for the tenant.
	ApprovalRequired bool `json:"approval_required"`
}

// Plan is a stored plan.
type Plan struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	RateLimit RateLimit `json:"rate_limit"`
	Quota     Quota     `json:"quota"`
	APIIDs    []string  `json:"api_ids"`
	Price     *Price    `json:"price"`
	// Concurrency is the in-flight limit per key or consumer; 0 means none.
	Concurrency      int64     `json:"concurrency"`
	Public           bool      `json:"public"`
	ApprovalRequired bool      `json:"approval_required"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

// Input returns the settable fields of p.
func (p Plan) Input() PlanInput {
	return PlanInput{Name: p.Name, RateLimit: p.RateLimit, Quota: p.Quota, APIIDs: p.APIIDs, Price: p.Price,
		Concurrency: p.Concurrency, Public: p.Public, ApprovalRequired: p.ApprovalRequired}
}

// Priced reports whether subscribing to the plan costs money.
func (p Plan) Priced() bool {
	return p.Price != nil && (p.Price.AmountCents > 0 || p.Price.PerRequest() != nil)
}

func normalizePlan(ctx context.Context, q querier, tenantID string, in PlanInput) (PlanInput, error) {
	v := &fault.ValidationError{}
	in.Name = strings.TrimSpace(in.Name)
	checkName(v, "name", in.Name)
	checkRateLimit(v, "rate_limit", in.RateLimit)
	switch in.RateLimit.Scope {
	case "":
		in.RateLimit.Scope = ScopeKey
	case ScopeKey, ScopeConsumer:
	default:
		v.Add("rate_limit.scope", "must be %q or %q", ScopeKey, ScopeConsumer)
	}
	if in.Concurrency < 0 || in.Concurrency > MaxConcurrency {
		v.Add("concurrency", "must be between 0 (no limit) and %d", MaxConcurrency)
	}
	if in.Quota.Requests < 0 {
		v.Add("quota.requests", "must not be negative (0 means unlimited)")
	}
	switch in.Quota.Period {
	case "":
		in.Quota.Period = PeriodMonth
	case PeriodDay, PeriodMonth:
	default:
		v.Add("quota.period", "must be %q or %q", PeriodDay, PeriodMonth)
	}
	if in.Price != nil {
		p := *in.Price
		p.Currency = strings.ToLower(p.Currency)
		if p.AmountCents < 0 || p.AmountCents > 99_999_999 {
			field := "price.amount"
			if p.centsAlias {
				field = "price.amount_cents"
			}
			v.Add(field, "must be between 0 and 99999999 (in the currency's minor unit)")
		}
		if !currencyRE.MatchString(p.Currency) {
			v.Add("price.currency", "must be a three-letter ISO 4217 code such as \"usd\"")
		}
		if p.Interval == "" {
			p.Interval = "month"
		} else if !priceIntervals[p.Interval] {
			v.Add("price.interval", "must be day, week, month or year")
		}
		if p.PerRequestDecimal != "" && !decimalRE.MatchString(p.PerRequestDecimal) {
			v.Add("price.per_request_decimal", "must be a non-negative decimal such as \"0.05\" (minor units per request, at most 12 decimals)")
		}
		if p.IncludedRequests < 0 {
			v.Add("price.included_requests", "must not be negative")
		}
		if p.IncludedRequests > 0 && p.PerRequestDecimal == "" {
			v.Add("price.included_requests", "only applies to a per-request price")
		}
		p.centsAlias = false
		in.Price = &p
	}
	if len(in.APIIDs) > MaxPlanAPIs {
		v.Add("api_ids", "at most %d APIs are allowed", MaxPlanAPIs)
	}
	ids := make([]string, 0, len(in.APIIDs))
	seen := map[string]bool{}
	for i, id := range in.APIIDs {
		id = strings.ToLower(id)
		switch {
		case !store.ValidID(id):
			v.Add(fmt.Sprintf("api_ids[%d]", i), "no such API")
		case seen[id]:
			v.Add(fmt.Sprintf("api_ids[%d]", i), "is listed twice")
		default:
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) > 0 && len(v.Errors) == 0 {
		rows, err := q.Query(ctx, `SELECT id::text FROM apis WHERE tenant_id = $1 AND id = ANY($2::uuid[])`, tenantID, ids)
		if err != nil {
			return PlanInput{}, fmt.Errorf("check plan apis: %w", err)
		}
		found, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return PlanInput{}, fmt.Errorf("check plan apis: %w", err)
		}
		ok := map[string]bool{}
		for _, id := range found {
			ok[id] = true
		}
		for i, id := range in.APIIDs {
			if !ok[strings.ToLower(id)] {
				v.Add(fmt.Sprintf("api_ids[%d]", i), "no such API")
			}
		}
	}
	if err := v.Err(); err != nil {
		return PlanInput{}, err
	}
	in.APIIDs = ids
	return in, nil
}

const planCols = `id, name, rate_limit_requests, rate_limit_per_seconds, quota_requests, quota_period,
	price_cents, currency, created_at, updated_at, rate_limit_burst, rate_limit_scope, concurrency,
	public, approval_required, price_interval, per_request_decimal::text, included_requests`

func scanPlan(row pgx.Row) (Plan, error) {
	var p Plan
	var cents *int64
	var cur, perReq *string
	var interval string
	var included int64
	err := row.Scan(&p.ID, &p.Name, &p.RateLimit.Requests, &p.RateLimit.PerSeconds, &p.Quota.Requests,
		&p.Quota.Period, &cents, &cur, &p.CreatedAt, &p.UpdatedAt, &p.RateLimit.Burst, &p.RateLimit.Scope, &p.Concurrency,
		&p.Public, &p.ApprovalRequired, &interval, &perReq, &included)
	if cents != nil && cur != nil {
		p.Price = &Price{AmountCents: *cents, Currency: *cur, Interval: interval, IncludedRequests: included}
		if perReq != nil {
			p.Price.PerRequestDecimal = trimDecimal(*perReq)
		}
	}
	p.APIIDs = []string{}
	return p, err
}

func loadPlanAPIs(ctx context.Context, q querier, ps []Plan) error {
	if len(ps) == 0 {
		return nil
	}
	ids := make([]string, len(ps))
	idx := make(map[string]int, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
		idx[p.ID] = i
	}
	rows, err := q.Query(ctx, `SELECT pa.plan_id::text, pa.api_id::text FROM plan_apis pa JOIN apis a ON a.id = pa.api_id
		WHERE pa.plan_id = ANY($1::uuid[]) ORDER BY pa.plan_id, a.created_at, a.id`, ids)
	if err != nil {
		return fmt.Errorf("load plan apis: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var pid, aid string
		if err := rows.Scan(&pid, &aid); err != nil {
			return fmt.Errorf("load plan apis: %w", err)
		}
		ps[idx[pid]].APIIDs = append(ps[idx[pid]].APIIDs, aid)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load plan apis: %w", err)
	}
	return nil
}

func getPlan(ctx context.Context, q querier, tenantID, id string, forUpdate bool) (Plan, error) {
	if !store.ValidID(id) {
		return Plan{}, fault.ErrNotFound
	}
	sql := `SELECT ` + planCols + ` FROM plans WHERE tenant_id = $1 AND id = $2`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	p, err := scanPlan(q.QueryRow(ctx, sql, tenantID, id))
	if err != nil {
		return Plan{}, notFound(err)
	}
	ps := []Plan{p}
	if err := loadPlanAPIs(ctx, q, ps); err != nil {
		return Plan{}, err
	}
	return ps[0], nil
}

// GetPlan returns one plan of the tenant.
func (s *Service) GetPlan(ctx context.Context, tenantID, id string) (Plan, error) {
	p, err := getPlan(ctx, s.DB, tenantID, id, false)
	if err != nil {
		return Plan{}, fmt.Errorf("get plan: %w", err)
	}
	return p, nil
}

// ListPlans returns one page of the tenant's plans and the next cursor.
func (s *Service) ListPlans(ctx context.Context, tenantID string, page store.Page) ([]Plan, string, error) {
	list, next, err := listQuery(ctx, s.DB, page, `SELECT `+planCols+` FROM plans WHERE tenant_id = $1 %s`,
		[]any{tenantID}, scanPlan, func(p Plan) (time.Time, string) { return p.CreatedAt, p.ID })
	if err != nil {
		return nil, "", fmt.Errorf("list plans: %w", err)
	}
	if err := loadPlanAPIs(ctx, s.DB, list); err != nil {
		return nil, "", fmt.Errorf("list plans: %w", err)
	}
	return list, next, nil
}

func priceArgs(p *Price) (cents, currency, interval, perRequest, included any) {
	if p == nil {
		return nil, nil, "month", nil, int64(0)
	}
	var pr any
	if p.PerRequestDecimal != "" {
		pr = p.PerRequestDecimal
	}
	return p.AmountCents, p.Currency, p.Interval, pr, p.IncludedRequests
}

// trimDecimal drops the trailing zeros numeric(20,12) pads a decimal with.
func trimDecimal(d string) string {
	if strings.Contains(d, ".") {
		d = strings.TrimRight(strings.TrimRight(d, "0"), ".")
	}
	return d
}

func writePlanAPIs(ctx context.Context, tx pgx.Tx, tenantID, planID string, ids []string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM plan_apis WHERE tenant_id = $1 AND plan_id = $2`, tenantID, planID); err != nil {
		return fmt.Errorf("replace plan apis: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO plan_apis (tenant_id, plan_id, api_id)
		SELECT $1, $2, unnest($3::uuid[])`, tenantID, planID, ids); err != nil {
		return fmt.Errorf("insert plan apis: %w", err)
	}
	return nil
}

// CreatePlan validates in and stores a new plan.
func (s *Service) CreatePlan(ctx context.Context, who audit.Actor, in PlanInput) (Plan, error) {
	var p Plan
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		lim, err := s.beginLimits(ctx, tx, who.TenantID)
		if err != nil {
			return err
		}
		if err := checkAdd(ctx, tx, lim, who.TenantID, limits.Plans, 1, ""); err != nil {
			return err
		}
		in, err := normalizePlan(ctx, tx, who.TenantID, in)
		if err != nil {
			return err
		}
		cents, cur, interval, perReq, included := priceArgs(in.Price)
		p, err = scanPlan(tx.QueryRow(ctx, `INSERT INTO plans (tenant_id, name, rate_limit_requests,
			rate_limit_per_seconds, quota_requests, quota_period, price_cents, currency,
			rate_limit_burst, rate_limit_scope, concurrency, public, approval_required,
			price_interval, per_request_decimal, included_requests)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING `+planCols,
			who.TenantID, in.Name, in.RateLimit.Requests, in.RateLimit.PerSeconds, in.Quota.Requests,
			in.Quota.Period, cents, cur, in.RateLimit.Burst, in.RateLimit.Scope, in.Concurrency,
			in.Public, in.ApprovalRequired, interval, perReq, included))
		if err != nil {
			return fmt.Errorf("insert plan: %w", err)
		}
		if err := writePlanAPIs(ctx, tx, who.TenantID, p.ID, in.APIIDs); err != nil {
			return err
		}
		p.APIIDs = in.APIIDs
		if err := s.checkConfigGrowth(ctx, tx, lim, who.TenantID, -1); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, who, "plan.create", "plan", p.ID, p.Input()); err != nil {
			return err
		}
		if err := EnqueuePlanSync(ctx, tx, who.TenantID, p.ID); err != nil {
			return err
		}
		return outbox.MarkChanged(ctx, tx, who.TenantID)
	})
	if err != nil {
		return Plan{}, fmt.Errorf("create plan: %w", err)
	}
	return p, nil
}

// UpdatePlan applies change to the plan's current input, validates and stores it.
func (s *Service) UpdatePlan(ctx context.Context, who audit.Actor, id string, change func(*PlanInput) error) (Plan, error) {
	var p Plan
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		lim, err := s.beginLimits(ctx, tx, who.TenantID)
		if err != nil {
			return err
		}
		cur, err := getPlan(ctx, tx, who.TenantID, id, true)
		if err != nil {
			return err
		}
		before, err := s.configSize(ctx, tx, who.TenantID)
		if err != nil {
			return err
		}
		in := cur.Input()
		in.APIIDs = append([]string(nil), cur.APIIDs...)
		if err := change(&in); err != nil {
			return err
		}
		in, err = normalizePlan(ctx, tx, who.TenantID, in)
		if err != nil {
			return err
		}
		cents, currency, interval, perReq, included := priceArgs(in.Price)
		p, err = scanPlan(tx.QueryRow(ctx, `UPDATE plans SET name = $3, rate_limit_requests = $4,
			rate_limit_per_seconds = $5, quota_requests = $6, quota_period = $7, price_cents = $8, currency = $9,
			rate_limit_burst = $10, rate_limit_scope = $11, concurrency = $12,
			public = $13, approval_required = $14, price_interval = $15, per_request_decimal = $16,
			included_requests = $17,
			updated_at = now() WHERE tenant_id = $1 AND id = $2 RETURNING `+planCols,
			who.TenantID, id, in.Name, in.RateLimit.Requests, in.RateLimit.PerSeconds, in.Quota.Requests,
			in.Quota.Period, cents, currency, in.RateLimit.Burst, in.RateLimit.Scope, in.Concurrency,
			in.Public, in.ApprovalRequired, interval, perReq, included))
		if err != nil {
			return fmt.Errorf("update plan: %w", err)
		}
		if err := writePlanAPIs(ctx, tx, who.TenantID, id, in.APIIDs); err != nil {
			return err
		}
		p.APIIDs = in.APIIDs
		if err := s.checkConfigGrowth(ctx, tx, lim, who.TenantID, before); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, who, "plan.update", "plan", id,
			map[string]any{"before": cur.Input(), "after": p.Input()}); err != nil {
			return err
		}
		if err := EnqueuePlanSync(ctx, tx, who.TenantID, p.ID); err != nil {
			return err
		}
		return outbox.MarkChanged(ctx, tx, who.TenantID)
	})
	if err != nil {
		return Plan{}, fmt.Errorf("update plan: %w", err)
	}
	return p, nil
}

// DeletePlan removes a plan. It is a conflict while the plan has active keys.
func (s *Service) DeletePlan(ctx context.Context, who audit.Actor, id string) error {
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		cur, err := getPlan(ctx, tx, who.TenantID, id, true)
		if err != nil {
			return err
		}
		var active int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM keys WHERE tenant_id = $1 AND plan_id = $2 AND status = 'active'`,
			who.TenantID, id).Scan(&active); err != nil {
			return fmt.Errorf("count plan keys: %w", err)
		}
		if active > 0 {
			return fault.Conflict("", "plan has %d active keys; revoke them first", active)
		}
		// The plan's Stripe Product and Prices are archived; the cascade
		// below drops the rows that name them.
		if err := EnqueuePlanArchive(ctx, tx, who.TenantID, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM plans WHERE tenant_id = $1 AND id = $2`, who.TenantID, id); err != nil {
			return fmt.Errorf("delete plan: %w", err)
		}
		if err := audit.Record(ctx, tx, who, "plan.delete", "plan", id, cur.Input()); err != nil {
			return err
		}
		return outbox.MarkChanged(ctx, tx, who.TenantID)
	})
	if err != nil {
		return fmt.Errorf("delete plan: %w", err)
	}
	return nil
}

// ListPublicPlans returns the tenant's public plans, by name (at most
// MaxPublishedListed).
func (s *Service) ListPublicPlans(ctx context.Context, tenantID string) ([]Plan, error) {
	rows, err := s.DB.Query(ctx, `SELECT `+planCols+` FROM plans WHERE tenant_id = $1 AND public
		ORDER BY coalesce(price_cents, 0), lower(name), id LIMIT $2`, tenantID, MaxPublishedListed)
	if err != nil {
		return nil, fmt.Errorf("list public plans: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Plan, error) { return scanPlan(r) })
	if err != nil {
		return nil, fmt.Errorf("list public plans: %w", err)
	}
	if err := loadPlanAPIs(ctx, s.DB, list); err != nil {
		return nil, fmt.Errorf("list public plans: %w", err)
	}
	return list, nil
}
