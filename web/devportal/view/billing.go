package view

import "time"

// Estimate is a subscription's next invoice as far as the gateway can tell:
// the plan's price rated with the requests served so far in the billing
// period.
type Estimate struct {
	PeriodStart, PeriodEnd time.Time
	// AsOf is when the requests were counted.
	AsOf time.Time
	// Served is the number of requests rated.
	Served int64
	Lines  []EstimateLine
	// Total is the formatted sum ("$21.50"), "Free" for a free plan.
	Total string
}

// EstimateLine is one line of an Estimate (flat price, included requests,
// priced requests).
type EstimateLine struct {
	Description string
	Quantity    int64
	// Amount is formatted ("$1.50").
	Amount string
}

// InvoiceRow is a past invoice of a subscription.
type InvoiceRow struct {
	ID string
	// Status is the payment provider's: paid, open, uncollectible, void.
	Status string
	// Amount is formatted: the amount paid of a paid invoice, else due.
	Amount                 string
	Created                time.Time
	PeriodStart, PeriodEnd *time.Time
	// URL is the provider's page of the invoice ("" for none).
	URL string
}

// invoiceStatusLabel names an invoice's status for people.
func invoiceStatusLabel(s string) string {
	switch s {
	case "open":
		return "payment failed"
	case "uncollectible":
		return "unpaid"
	}
	return s
}

// period says a billing period: "1 Mar – 1 Apr 2026".
func period(start, end time.Time) string {
	s, e := start.UTC(), end.UTC()
	if s.Year() == e.Year() {
		return s.Format("2 Jan") + " – " + e.Format("2 Jan 2006")
	}
	return s.Format("2 Jan 2006") + " – " + e.Format("2 Jan 2006")
}
