package billing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	stripego "github.com/stripe/stripe-go/v76"

	"github.com/tollgate/tollgate/billing/stripe"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
)

// PlanPrice is one version of a plan's price on Stripe: a Product (one per
// plan, shared by its versions) and the Prices made from one catalog price.
// A price change makes a new version with new Prices and archives the old
// ones; subscribers keep the version they subscribed to.
type PlanPrice struct {
	TenantID       string
	PlanID         string
	Version        int
	Price          catalog.Price
	ProductID      string
	FlatPriceID    string
	MeteredPriceID string
	MeterID        string
	MeterEventName string
	SyncedAt       *time.Time
	ArchivedAt     *time.Time
}

const planPriceCols = `tenant_id, plan_id, version, price, stripe_product_id, flat_price_id, metered_price_id,
	meter_id, meter_event_name, synced_at, archived_at`

func scanPlanPrice(row pgx.Row) (PlanPrice, error) {
	var p PlanPrice
	var raw []byte
	err := row.Scan(&p.TenantID, &p.PlanID, &p.Version, &raw, &p.ProductID, &p.FlatPriceID, &p.MeteredPriceID,
		&p.MeterID, &p.MeterEventName, &p.SyncedAt, &p.ArchivedAt)
	if err != nil {
		return PlanPrice{}, err
	}
	if err := json.Unmarshal(raw, &p.Price); err != nil {
		return PlanPrice{}, fmt.Errorf("decode plan price: %w", err)
	}
	return p, nil
}

// samePrice reports whether two catalog prices make the same Stripe prices.
func samePrice(a, b catalog.Price) bool {
	ra, rb := a.PerRequest(), b.PerRequest()
	if (ra == nil) != (rb == nil) || (ra != nil && ra.Cmp(rb) != 0) {
		return false
	}
	inc := func(p catalog.Price) int64 {
		if p.PerRequest() == nil {
			return 0
		}
		return p.IncludedRequests
	}
	return a.AmountCents == b.AmountCents && strings.EqualFold(a.Currency, b.Currency) &&
		interval(a) == interval(b) && inc(a) == inc(b)
}

func interval(p catalog.Price) string {
	if p.Interval == "" {
		return "month"
	}
	return p.Interval
}

// latestPlanPrice returns the plan's newest version, or ok=false.
func latestPlanPrice(ctx context.Context, q Querier, tenantID, planID string) (PlanPrice, bool, error) {
	p, err := scanPlanPrice(q.QueryRow(ctx, `SELECT `+planPriceCols+` FROM plan_prices
		WHERE tenant_id = $1 AND plan_id = $2 ORDER BY version DESC LIMIT 1`, tenantID, planID))
	if isNoRows(err) {
		return PlanPrice{}, false, nil
	} else if err != nil {
		return PlanPrice{}, false, fmt.Errorf("read plan price: %w", err)
	}
	return p, true, nil
}

// PlanPriceVersion returns one version of a plan's Stripe prices.
func (s *Service) PlanPriceVersion(ctx context.Context, tenantID, planID string, version int) (PlanPrice, error) {
	p, err := scanPlanPrice(s.DB.QueryRow(ctx, `SELECT `+planPriceCols+` FROM plan_prices
		WHERE tenant_id = $1 AND plan_id = $2 AND version = $3`, tenantID, planID, version))
	if isNoRows(err) {
		return PlanPrice{}, fmt.Errorf("plan price: %w", fault.ErrNotFound)
	} else if err != nil {
		return PlanPrice{}, fmt.Errorf("plan price: %w", err)
	}
	return p, nil
}

// currentPlanPrice returns the synced version of the plan's current price,
// or an UnavailableError (prices not ready) after queueing a sync.
func (s *Service) currentPlanPrice(ctx context.Context, plan catalog.Plan, tenantID string) (PlanPrice, error) {
	pp, ok, err := latestPlanPrice(ctx, s.DB, tenantID, plan.ID)
	if err != nil {
		return PlanPrice{}, err
	}
	if ok && pp.SyncedAt != nil && plan.Price != nil && samePrice(pp.Price, *plan.Price) {
		return pp, nil
	}
	if err := s.inTx(ctx, func(tx pgx.Tx) error { return catalog.EnqueuePlanSync(ctx, tx, tenantID, plan.ID) }); err != nil {
		return PlanPrice{}, err
	}
	return PlanPrice{}, unavailable(ReasonPricesNotReady)
}

func (s *Service) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.DB, fn)
}

// shortHash is a short digest of parts, for idempotency keys that must
// change with a request's parameters (Stripe refuses a key reused with
// other parameters).
func shortHash(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:6])
}

// timeBucket names the window of length d containing t, for idempotency
// keys of objects that expire (sessions, links): within a window a retry
// gets the same object, the next window a fresh one.
func timeBucket(t time.Time, d time.Duration) string {
	return strconv.FormatInt(t.Unix()/int64(d/time.Second), 10)
}

// syncPlan brings the plan's Stripe Product and Prices up to date, in tx
// (which holds the job's row lock). It is safe to repeat: every Stripe call
// carries an idempotency key built from the plan, the version and the
// object, so a retry after a failure (whose writes were rolled back) gets
// the objects the failed attempt created.
func (s *Service) syncPlan(ctx context.Context, tx pgx.Tx, tenantID, planID string) error {
	tb, err := s.connectedAccount(ctx, tx, tenantID)
	if errors.Is(err, ErrUnavailable) {
		return nil // connecting queues the syncs again
	} else if err != nil {
		return err
	}
	// One sync of a plan at a time across replicas and duplicate jobs.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('tollgate.billing.plan'), hashtext($1))`, planID); err != nil {
		return fmt.Errorf("lock plan: %w", err)
	}
	plan, err := s.Catalog.GetPlanTx(ctx, tx, tenantID, planID, false)
	if errors.Is(err, fault.ErrNotFound) {
		return nil // deleted: EnqueuePlanArchive queued the archiving
	} else if err != nil {
		return err
	}
	acct := s.Stripe.Account(tb.AccountID)
	latest, ok, err := latestPlanPrice(ctx, tx, tenantID, planID)
	if err != nil {
		return err
	}
	if !plan.Priced() {
		// A plan made free: its prices can no longer be bought; the
		// product stays for the subscriptions still billed on it.
		if ok {
			return s.archivePrices(ctx, tx, acct, tenantID, planID, latest.Version+1)
		}
		return nil
	}
	price := *plan.Price
	if ok && latest.SyncedAt != nil && latest.ArchivedAt == nil && samePrice(latest.Price, price) {
		if err := s.renameProduct(ctx, acct, latest.ProductID, plan); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE plan_prices SET synced_at = now() WHERE plan_id = $1 AND version = $2`,
			planID, latest.Version)
		return err
	}
	version := 1
	product := ""
	if ok {
		version = latest.Version + 1
		product = latest.ProductID
	}
	if product == "" {
		pp := &stripego.ProductParams{Name: stripego.String(plan.Name)}
		pp.AddMetadata("tollgate_tenant_id", tenantID)
		pp.AddMetadata("tollgate_plan_id", planID)
		p, err := acct.CreateProduct(ctx, stripe.IdempotencyKey("product", planID), pp)
		if err != nil {
			return err
		}
		product = p.ID
	} else if err := s.renameProduct(ctx, acct, product, plan); err != nil {
		return err
	}
	row := PlanPrice{TenantID: tenantID, PlanID: planID, Version: version, Price: price, ProductID: product}
	meta := func(p *stripego.Params, kind string) {
		p.AddMetadata("tollgate_tenant_id", tenantID)
		p.AddMetadata("tollgate_plan_id", planID)
		p.AddMetadata("tollgate_plan_version", strconv.Itoa(version))
		p.AddMetadata("tollgate_price_kind", kind)
	}
	v := "v" + strconv.Itoa(version)
	if price.AmountCents > 0 {
		pp := &stripego.PriceParams{Product: stripego.String(product), Currency: stripego.String(price.Currency),
			UnitAmount: stripego.Int64(price.AmountCents), Nickname: stripego.String(plan.Name),
			Recurring: &stripego.PriceRecurringParams{Interval: stripego.String(interval(price))}}
		meta(&pp.Params, "flat")
		p, err := acct.CreatePrice(ctx, stripe.IdempotencyKey("price-flat", planID, v), pp)
		if err != nil {
			return err
		}
		row.FlatPriceID = p.ID
	}
	if price.PerRequest() != nil {
		meter, event, err := s.ensureMeter(ctx, tx, acct, tb)
		if err != nil {
			return err
		}
		row.MeterID, row.MeterEventName = meter, event
		pp := &stripego.PriceParams{Product: stripego.String(product), Currency: stripego.String(price.Currency),
			Nickname: stripego.String(plan.Name + " (per request)"),
			Recurring: &stripego.PriceRecurringParams{Interval: stripego.String(interval(price)),
				UsageType: stripego.String("metered"), Meter: stripego.String(meter)}}
		// Decimal amounts go as the exact strings the tenant gave:
		// stripe-go's float64 fields would round 20-digit decimals.
		if price.IncludedRequests > 0 {
			pp.BillingScheme = stripego.String("tiered")
			pp.TiersMode = stripego.String("graduated")
			pp.Tiers = []*stripego.PriceTierParams{
				{UpTo: stripego.Int64(price.IncludedRequests), UnitAmount: stripego.Int64(0)},
				{UpToInf: stripego.Bool(true)},
			}
			pp.AddExtra("tiers[1][unit_amount_decimal]", price.PerRequestDecimal)
		} else {
			pp.AddExtra("unit_amount_decimal", price.PerRequestDecimal)
		}
		meta(&pp.Params, "metered")
		p, err := acct.CreatePrice(ctx, stripe.IdempotencyKey("price-metered", planID, v), pp)
		if err != nil {
			return err
		}
		row.MeteredPriceID = p.ID
	}
	raw, err := json.Marshal(price)
	if err != nil {
		return fmt.Errorf("encode plan price: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO plan_prices (tenant_id, plan_id, version, price, stripe_product_id,
			flat_price_id, metered_price_id, meter_id, meter_event_name, synced_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())`, tenantID, planID, version, raw, product,
		row.FlatPriceID, row.MeteredPriceID, row.MeterID, row.MeterEventName); err != nil {
		return fmt.Errorf("store plan price: %w", err)
	}
	return s.archivePrices(ctx, tx, acct, tenantID, planID, version)
}

// renameProduct keeps the product's name the plan's. The key names the
// plan's version of the moment (its updated_at), so that a retry repeats
// the call and a later rename back to an earlier name is not taken for one.
func (s *Service) renameProduct(ctx context.Context, acct stripe.Account, product string, plan catalog.Plan) error {
	if product == "" {
		return nil
	}
	pp := &stripego.ProductParams{Name: stripego.String(plan.Name)}
	_, err := acct.UpdateProduct(ctx, stripe.IdempotencyKey("product-name", plan.ID,
		strconv.FormatInt(plan.UpdatedAt.UnixMicro(), 10), shortHash(plan.Name)), product, pp)
	return err
}

// archivePrices archives the prices of the plan's versions before version
// that are not archived yet: they can no longer be bought, and the
// subscriptions billed on them go on.
func (s *Service) archivePrices(ctx context.Context, tx pgx.Tx, acct stripe.Account, tenantID, planID string, version int) error {
	rows, err := tx.Query(ctx, `SELECT `+planPriceCols+` FROM plan_prices WHERE tenant_id = $1 AND plan_id = $2
		AND version < $3 AND archived_at IS NULL ORDER BY version`, tenantID, planID, version)
	if err != nil {
		return fmt.Errorf("list prices to archive: %w", err)
	}
	old, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PlanPrice, error) { return scanPlanPrice(r) })
	if err != nil {
		return fmt.Errorf("list prices to archive: %w", err)
	}
	for _, p := range old {
		for _, id := range []string{p.FlatPriceID, p.MeteredPriceID} {
			if id == "" {
				continue
			}
			if err := archiveObject(ctx, acct, id); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE plan_prices SET archived_at = now() WHERE plan_id = $1 AND version = $2`,
			planID, p.Version); err != nil {
			return fmt.Errorf("mark prices archived: %w", err)
		}
	}
	return nil
}

// archiveObject sets active=false on a Price or a Product.
func archiveObject(ctx context.Context, acct stripe.Account, id string) error {
	key := stripe.IdempotencyKey("archive", id)
	var err error
	switch {
	case strings.HasPrefix(id, "price_"):
		_, err = acct.UpdatePrice(ctx, key, id, &stripego.PriceParams{Active: stripego.Bool(false)})
	case strings.HasPrefix(id, "prod_"):
		_, err = acct.UpdateProduct(ctx, key, id, &stripego.ProductParams{Active: stripego.Bool(false)})
	default:
		return fmt.Errorf("archive %q: not a price or product", id)
	}
	if stripe.NotFound(err) {
		return nil // gone already
	}
	return err
}

// ensureMeter returns the account's Billing Meter, creating it once (the
// tenant_billing row lock serialises creators across replicas).
func (s *Service) ensureMeter(ctx context.Context, tx pgx.Tx, acct stripe.Account, tb tenantBilling) (id, event string, err error) {
	if err := tx.QueryRow(ctx, `SELECT meter_id, meter_event_name FROM tenant_billing WHERE tenant_id = $1 FOR UPDATE`,
		tb.TenantID).Scan(&id, &event); err != nil {
		return "", "", fmt.Errorf("read meter: %w", err)
	}
	if id != "" {
		return id, event, nil
	}
	mp := &stripego.BillingMeterParams{
		DisplayName: stripego.String("API requests (Tollgate)"),
		EventName:   stripego.String(MeterEventName),
		DefaultAggregation: &stripego.BillingMeterDefaultAggregationParams{
			Formula: stripego.String("sum")},
		CustomerMapping: &stripego.BillingMeterCustomerMappingParams{
			Type: stripego.String("by_id"), EventPayloadKey: stripego.String(stripe.MeterCustomerKey)},
		ValueSettings: &stripego.BillingMeterValueSettingsParams{EventPayloadKey: stripego.String(stripe.MeterValueKey)},
	}
	m, err := acct.CreateMeter(ctx, stripe.IdempotencyKey("meter", tb.AccountID, MeterEventName), mp)
	if err != nil {
		return "", "", err
	}
	if _, err := tx.Exec(ctx, `UPDATE tenant_billing SET meter_id = $2, meter_event_name = $3, updated_at = now()
		WHERE tenant_id = $1`, tb.TenantID, m.ID, MeterEventName); err != nil {
		return "", "", fmt.Errorf("store meter: %w", err)
	}
	return m.ID, MeterEventName, nil
}

// archiveRef runs a stripe.archive job: ref is "<account>/<object id>".
func (s *Service) archiveRef(ctx context.Context, ref string) error {
	account, id, ok := strings.Cut(ref, "/")
	if !ok || account == "" || id == "" {
		return fmt.Errorf("archive job: bad ref %q", ref)
	}
	if !s.Enabled() {
		return unavailable(ReasonDisabled)
	}
	return archiveObject(ctx, s.Stripe.Account(account), id)
}

// cancelRef runs a JobCancelStripeSubscription job.
func (s *Service) cancelRef(ctx context.Context, ref string) error {
	account, id, ok := strings.Cut(ref, "/")
	if !ok || account == "" || id == "" {
		return fmt.Errorf("cancel job: bad ref %q", ref)
	}
	if !s.Enabled() {
		return unavailable(ReasonDisabled)
	}
	_, err := s.Stripe.Account(account).CancelSubscription(ctx, stripe.IdempotencyKey("cancel-orphan", id), id,
		&stripego.SubscriptionCancelParams{Prorate: stripego.Bool(true)})
	if stripe.NotFound(err) {
		return nil
	}
	return err
}
