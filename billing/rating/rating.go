// Package rating is Tollgate's one answer to "what does this much usage
// cost on this price": the tiers a plan's Stripe prices are made of
// (Tiers), the amount due for a period's served requests (Rate), the rule
// of which requests count as served (Billable, Served), and the developer's
// next-invoice estimate built from them (Estimate).
//
// The meter events (billing/metering) report the served count of every
// window under the same Billable rule, and Stripe rates their sum with the
// prices built from Tiers; Rate applies those tiers the way Stripe does, so
// the estimate a developer sees and the invoice Stripe issues agree up to
// what the estimate cannot know (prorations, discounts, taxes, credits).
package rating

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"

	"github.com/tollgate/tollgate/services/catalog"
)

// Tier is one tier of a graduated per-request price, as Stripe's
// tiers[].up_to and tiers[].unit_amount_decimal.
type Tier struct {
	// UpTo is the last request of the period this tier prices (inclusive);
	// 0 means the tier is unbounded (Stripe's up_to=inf).
	UpTo int64
	// UnitAmountDecimal is the price of one request in the currency's minor
	// unit, an exact decimal ("0", "0.05").
	UnitAmountDecimal string
}

// Tiers returns the graduated tiers of p's per-request part: a free first
// tier of IncludedRequests (when set), then every further request at
// PerRequestDecimal. It is nil when p has no per-request price. The price
// sync should build the Stripe metered price from exactly these tiers
// (tiers_mode=graduated), so that Stripe's invoice and Rate agree.
func Tiers(p catalog.Price) []Tier {
	unit := p.PerRequest()
	if unit == nil {
		return nil
	}
	dec := decimalString(unit)
	if p.IncludedRequests <= 0 {
		return []Tier{{UpTo: 0, UnitAmountDecimal: dec}}
	}
	return []Tier{{UpTo: p.IncludedRequests, UnitAmountDecimal: "0"}, {UpTo: 0, UnitAmountDecimal: dec}}
}

// Line kinds.
const (
	// LineFlat is the flat recurring amount of the period.
	LineFlat = "flat"
	// LineIncluded is the requests of the free first tier.
	LineIncluded = "included"
	// LineRequests is the requests priced per request.
	LineRequests = "requests"
)

// Line is one line of a Quote: an invoice line as Stripe would write it
// (one per tier of a graduated price).
type Line struct {
	// Kind is LineFlat, LineIncluded or LineRequests.
	Kind string `json:"kind"`
	// Description is a short English text for the line.
	Description string `json:"description"`
	// Quantity is 1 for the flat amount and a number of requests otherwise.
	Quantity int64 `json:"quantity"`
	// UnitAmountDecimal is the price of one unit in the minor unit.
	UnitAmountDecimal string `json:"unit_amount_decimal"`
	// ExactAmount is Quantity × UnitAmountDecimal before rounding, as a
	// decimal string in the minor unit.
	ExactAmount string `json:"exact_amount"`
	// Amount is ExactAmount rounded to a whole minor unit (see Rate).
	Amount int64 `json:"amount"`
}

// Quote is what a period's usage costs on a price.
type Quote struct {
	// Currency is the price's ISO 4217 code (lowercase); "" for a free plan.
	Currency string `json:"currency"`
	// Served is the number of served requests rated.
	Served int64 `json:"served"`
	// Lines are the flat line (if any), then the tier lines in order.
	Lines []Line `json:"lines"`
	// Total is the sum of the lines' Amounts, in the minor unit.
	Total int64 `json:"total"`
}

// ErrNegativeUsage is returned by Rate for a negative request count.
var ErrNegativeUsage = errors.New("rating: served requests must not be negative")

// Rate returns what served requests in one billing period cost on p: the
// flat amount, plus the graduated per-request part of Tiers(p) (the first
// IncludedRequests free). It is the one rating function of Tollgate: the
// developer's invoice estimate uses it, and the Stripe prices the meter
// events are billed with are built from the same Tiers.
//
// Amounts are exact rationals until each line is rounded, then summed, as
// Stripe does with unit_amount_decimal ("rounding occurs on the line item
// level": quantity × unit amount, rounded to the nearest whole minor unit,
// a half rounding up; Stripe's own example rounds 0.05 × 30 = 1.5 to 2).
// For a graduated price Stripe writes one line per tier; with Tollgate's
// tiers only the last one can carry a fraction (the included tier costs
// 0), so rounding per tier and per price give the same total.
func Rate(p catalog.Price, served int64) (Quote, error) {
	if served < 0 {
		return Quote{}, ErrNegativeUsage
	}
	q := Quote{Currency: p.Currency, Served: served, Lines: []Line{}}
	if p.AmountCents > 0 {
		q.Lines = append(q.Lines, Line{Kind: LineFlat, Description: "Flat fee per " + interval(p),
			Quantity: 1, UnitAmountDecimal: strconv.FormatInt(p.AmountCents, 10),
			ExactAmount: strconv.FormatInt(p.AmountCents, 10), Amount: p.AmountCents})
	}
	var from int64 // requests already priced by earlier tiers
	for _, t := range Tiers(p) {
		qty := served - from
		if t.UpTo > 0 {
			qty = min(served, t.UpTo) - from
		}
		if qty < 0 {
			qty = 0
		}
		unit, ok := new(big.Rat).SetString(t.UnitAmountDecimal)
		if !ok {
			return Quote{}, fmt.Errorf("rating: bad unit amount %q", t.UnitAmountDecimal)
		}
		exact := new(big.Rat).Mul(unit, new(big.Rat).SetInt64(qty))
		amount, err := roundHalfUp(exact)
		if err != nil {
			return Quote{}, err
		}
		l := Line{Kind: LineRequests, Quantity: qty, UnitAmountDecimal: t.UnitAmountDecimal,
			ExactAmount: decimalString(exact), Amount: amount}
		switch {
		case unit.Sign() == 0 && t.UpTo > 0:
			l.Kind = LineIncluded
			l.Description = fmt.Sprintf("Included requests (first %d)", t.UpTo)
		case from > 0:
			l.Description = fmt.Sprintf("Requests after the first %d", from)
		default:
			l.Description = "Requests"
		}
		q.Lines = append(q.Lines, l)
		if t.UpTo == 0 {
			break
		}
		from = t.UpTo
	}
	for _, l := range q.Lines {
		q.Total += l.Amount
	}
	return q, nil
}

func interval(p catalog.Price) string {
	if p.Interval == "" {
		return "month"
	}
	return p.Interval
}

// roundHalfUp rounds a non-negative rational to the nearest integer, a half
// going up.
func roundHalfUp(r *big.Rat) (int64, error) {
	if r.Sign() < 0 {
		return 0, fmt.Errorf("rating: negative amount %s", r.RatString())
	}
	// floor(r + 1/2) = (2·num + den) div (2·den)
	num := new(big.Int).Mul(r.Num(), big.NewInt(2))
	num.Add(num, r.Denom())
	den := new(big.Int).Mul(r.Denom(), big.NewInt(2))
	q := new(big.Int).Quo(num, den)
	if !q.IsInt64() {
		return 0, fmt.Errorf("rating: amount %s out of range", r.RatString())
	}
	return q.Int64(), nil
}

// decimalString writes r as a plain decimal without trailing zeros. r's
// denominator divides a power of ten for every price Tollgate accepts (at
// most 12 decimals); anything else is written with 12 decimals, rounded.
func decimalString(r *big.Rat) string {
	s := r.FloatString(12)
	for len(s) > 0 && s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}
