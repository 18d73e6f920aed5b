package mgmtapi

import (
	"errors"
	"slices"
	"time"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
)

// PlanRequest creates a plan (POST /v1/plans); PATCH merges the fields it
// names into the plan's current ones.
type PlanRequest struct {
	Name        string    `json:"name" maxLength:"200"`
	RateLimit   RateLimit `json:"rate_limit"`
	Quota       Quota     `json:"quota"`
	APIIDs      []string  `json:"api_ids" format:"uuid" doc:"the tenant's APIs that keys of this plan may call"`
	Price       *Price    `json:"price" doc:"null: a free plan"`
	Concurrency int64     `json:"concurrency" min:"0" max:"100000" doc:"most requests in flight per key (or consumer, by rate_limit.scope); 0: no limit"`
	Public      bool      `json:"public" doc:"offered in the developer portal"`
	// ApprovalRequired makes developers' subscriptions wait for the tenant.
	ApprovalRequired bool `json:"approval_required" doc:"developers' subscriptions wait for the tenant"`
}

func (PlanRequest) schemaDoc() string {
	return "What a caller sets on a plan: the limits keys are issued under, the APIs they may call and the price."
}

// Plan is a stored plan.
type Plan struct {
	ID               string    `json:"id" format:"uuid"`
	Name             string    `json:"name"`
	RateLimit        RateLimit `json:"rate_limit"`
	Quota            Quota     `json:"quota"`
	APIIDs           []string  `json:"api_ids" format:"uuid"`
	Price            *Price    `json:"price" doc:"null: a free plan"`
	Concurrency      int64     `json:"concurrency" doc:"0: no limit"`
	Public           bool      `json:"public" doc:"offered in the developer portal"`
	ApprovalRequired bool      `json:"approval_required" doc:"developers' subscriptions wait for the tenant"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

func (Plan) schemaDoc() string { return "A set of limits and a price that keys are issued under." }

// Quota allows requests per period.
type Quota struct {
	Requests int64  `json:"requests" min:"0" doc:"0: unlimited"`
	Period   string `json:"period" enum:"day,month" default:"month" doc:"calendar, UTC"`
}

func (Quota) schemaDoc() string { return "At most requests per calendar period." }

// Price is what a plan costs: a flat amount per period, a price per
// request, or both. In a request, amount_cents is accepted as an alias of
// amount; an answer carries both.
type Price struct {
	Amount            *int64 `json:"amount,omitempty" min:"0" max:"99999999" doc:"flat amount per period, in the currency's minor unit"`
	AmountCents       *int64 `json:"amount_cents,omitempty" min:"0" max:"99999999" doc:"alias of amount"`
	Currency          string `json:"currency" pattern:"^[A-Za-z]{3}$" doc:"ISO 4217 code, stored lowercase: usd"`
	Interval          string `json:"interval" enum:"day,week,month,year" default:"month"`
	PerRequestDecimal string `json:"per_request_decimal,omitempty" doc:"price of one request in the minor unit, e.g. \"0.05\""`
	IncludedRequests  int64  `json:"included_requests" min:"0" doc:"free requests per period before per-request pricing"`
}

func (Price) schemaDoc() string {
	return "A plan's price: a flat amount per interval, a price per request, or both; amounts in the currency's minor unit."
}

func (r PlanRequest) input() catalog.PlanInput {
	return catalog.PlanInput{Name: r.Name, RateLimit: r.RateLimit.domain(), Quota: r.Quota.domain(),
		APIIDs: slices.Clone(r.APIIDs), Price: r.Price.domain(), Concurrency: r.Concurrency, Public: r.Public,
		ApprovalRequired: r.ApprovalRequired}
}

// domainError names a refused price amount by the field the request used:
// the catalog knows it as amount only.
func (r PlanRequest) domainError(err error) error {
	var ve *fault.ValidationError
	if r.Price == nil || r.Price.Amount != nil || r.Price.AmountCents == nil || !errors.As(err, &ve) {
		return err
	}
	for i, fe := range ve.Errors {
		if fe.Field == "price.amount" {
			ve.Errors[i].Field = "price.amount_cents"
		}
	}
	return err
}

func planRequestOf(in catalog.PlanInput) PlanRequest {
	return PlanRequest{Name: in.Name, RateLimit: rateLimitOf(in.RateLimit), Quota: quotaOf(in.Quota),
		APIIDs: slices.Clone(in.APIIDs), Price: priceRequestOf(in.Price), Concurrency: in.Concurrency, Public: in.Public,
		ApprovalRequired: in.ApprovalRequired}
}

func planOf(p catalog.Plan) Plan {
	return Plan{ID: p.ID, Name: p.Name, RateLimit: rateLimitOf(p.RateLimit), Quota: quotaOf(p.Quota),
		APIIDs: slices.Clone(p.APIIDs), Price: priceOf(p.Price), Concurrency: p.Concurrency, Public: p.Public,
		ApprovalRequired: p.ApprovalRequired, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
}

func (q Quota) domain() catalog.Quota { return catalog.Quota{Requests: q.Requests, Period: q.Period} }

func quotaOf(q catalog.Quota) Quota { return Quota{Requests: q.Requests, Period: q.Period} }

// domain maps a requested price; amount wins over its alias amount_cents.
func (p *Price) domain() *catalog.Price {
	if p == nil {
		return nil
	}
	out := &catalog.Price{Currency: p.Currency, Interval: p.Interval, PerRequestDecimal: p.PerRequestDecimal,
		IncludedRequests: p.IncludedRequests}
	switch {
	case p.Amount != nil:
		out.AmountCents = *p.Amount
	case p.AmountCents != nil:
		out.AmountCents = *p.AmountCents
	}
	return out
}

// priceRequestOf is the stored price as a request names it (amount only).
func priceRequestOf(p *catalog.Price) *Price {
	if p == nil {
		return nil
	}
	amount := p.AmountCents
	return &Price{Amount: &amount, Currency: p.Currency, Interval: p.Interval,
		PerRequestDecimal: p.PerRequestDecimal, IncludedRequests: p.IncludedRequests}
}

// priceOf is the stored price as answered: amount and its alias both.
func priceOf(p *catalog.Price) *Price {
	if p == nil {
		return nil
	}
	amount, cents := p.AmountCents, p.AmountCents
	return &Price{Amount: &amount, AmountCents: &cents, Currency: p.Currency, Interval: p.Interval,
		PerRequestDecimal: p.PerRequestDecimal, IncludedRequests: p.IncludedRequests}
}
