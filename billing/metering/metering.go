// Package metering reports the usage the gateway served to Stripe Billing
// Meters, once and only once.
//
// It is an outbox in two halves that share the table meter_reports:
//
//   - The Producer turns closed usage windows into rows. For every
//     subscription with a metered price (its plan version has a
//     per-request price and a meter, its app a Stripe customer, its tenant
//     a connected account), it sums the requests its keys were served in
//     each window (rating.Billable: 1xx–3xx; refusals and failures are not
//     billed) from usage_minutes and compares the sum with the rows already
//     written for the window. Nothing yet: it writes sequence 0 with the
//     sum. Usage that arrived after the window was reported: it writes the
//     next sequence with only the difference. A row is never changed once
//     written; its identifier (Identifier) is derived from the tenant, the
//     subscription, the meter, the window and the sequence, so a crashed
//     and rerun producer, or two producers at once, write the same rows
//     (the UNIQUE constraints keep the first).
//   - The Sender claims pending rows (FOR UPDATE SKIP LOCKED, in id order)
//     and sends each as a meter event on the tenant's connected account,
//     under the row's identifier (and an idempotency key made from it),
//     timestamped at the window's start. It marks a row sent in the
//     transaction that claimed it, after Stripe answered. A crash between
//     the answer and the commit leaves the row pending; it is sent again
//     under the same identifier, and Stripe keeps the first value it got
//     for an identifier, so nothing is billed twice. (Stripe promises that
//     for at least 24 hours: a sender that stays down longer than that
//     after such a crash is the one case this cannot cover.)
//
// Windows older than Stripe accepts (MaxEventAge) are written or marked
// expired, refusals (a 4xx other than 409 and 429) refused with Stripe's
// error: both stay visible (Drift, ReportStats) instead of being dropped,
// and Drift compares per subscription what was served with what was
// reported; Repair writes what is missing, Requeue retries refusals.
package metering

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// Client is the part of billing/stripe's Client that metering uses: one
// meter event on a connected account. *stripe.Client implements it (its
// idempotency key is derived from identifier).
type Client interface {
	MeterEvent(ctx context.Context, account, eventName, identifier, customer string, value int64, ts time.Time) error
}

// Defaults shared by the Producer and the Sender.
const (
	// DefaultWindow is the usage window of one meter event: a minute, the
	// rollups' granularity.
	DefaultWindow = time.Minute
	// MaxEventAge is the oldest timestamp Stripe accepts on a meter event
	// (35 days), less a margin for clocks and for the time a row waits
	// before it is sent. Older windows are expired, not sent.
	MaxEventAge = 35*24*time.Hour - 10*time.Minute
	// MaxIdentifierLen is Stripe's limit on a meter event identifier.
	MaxIdentifierLen = 100
)

// Report statuses (meter_reports.status).
const (
	StatusPending = "pending"
	StatusSent    = "sent"
	StatusRefused = "refused"
	StatusExpired = "expired"
)

// Identifier returns the meter event identifier of the report of a
// subscription's usage window (its start) and sequence:
//
//	tg:<subscription>:<window start, Unix seconds>:<seq>:<meter hash>
//
// where the meter hash is the first 12 hex digits of the SHA-256 of the
// tenant, the connected account, the customer and the meter's event name.
// It is at most 70 characters (Stripe allows MaxIdentifierLen), and the
// same inputs always give the same identifier.
func Identifier(tenantID, subscriptionID, account, customer, eventName string, windowStart time.Time, seq int) string {
	h := sha256.New()
	for _, s := range []string{tenantID, account, customer, eventName} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	sum := h.Sum(nil)
	return "tg:" + subscriptionID + ":" + strconv.FormatInt(windowStart.Unix(), 10) + ":" + strconv.Itoa(seq) +
		":" + hex.EncodeToString(sum[:6])
}

// windowStart returns the start of the window of length w (aligned to the
// Unix epoch) containing t.
func windowStart(t time.Time, w time.Duration) time.Time {
	s := int64(w / time.Second)
	u := t.Unix()
	return time.Unix(u-mod(u, s), 0).UTC()
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}
