package pipeline

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/tollgate/tollgate/proxy/problem"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

func TestKeyProblem(t *testing.T) {
	t.Parallel()
	const now = 1_800_000_000
	tests := []struct {
		name    string
		rec     proxycfg.KeyRecord
		want    *problem.Problem
		payment bool
	}{
		{name: "active", rec: proxycfg.KeyRecord{Status: proxycfg.KeyActive}},
		{name: "revoked", rec: proxycfg.KeyRecord{Status: proxycfg.KeyRevoked}, want: problem.Unauthorized},
		{name: "suspended", rec: proxycfg.KeyRecord{Status: proxycfg.KeySuspended}, want: problem.ConsumerSuspended},
		{name: "canceled", rec: proxycfg.KeyRecord{Status: proxycfg.KeyCanceled}, want: problem.SubscriptionCanceled},
		{name: "past due within grace", rec: proxycfg.KeyRecord{Status: proxycfg.KeyPastDue, GraceUntil: now + 1}},
		{name: "past due at grace end", rec: proxycfg.KeyRecord{Status: proxycfg.KeyPastDue, GraceUntil: now},
			want: problem.PaymentRequired, payment: true},
		{name: "past due without grace", rec: proxycfg.KeyRecord{Status: proxycfg.KeyPastDue},
			want: problem.PaymentRequired, payment: true},
		{name: "unknown status fails closed", rec: proxycfg.KeyRecord{Status: "frozen"}, want: problem.Unauthorized},
		{name: "empty status fails closed", rec: proxycfg.KeyRecord{}, want: problem.Unauthorized},
		{name: "not yet expired", rec: proxycfg.KeyRecord{Status: proxycfg.KeyActive, ExpiresAt: now + 1}},
		{name: "expires now", rec: proxycfg.KeyRecord{Status: proxycfg.KeyActive, ExpiresAt: now}, want: problem.Unauthorized},
		{name: "expired", rec: proxycfg.KeyRecord{Status: proxycfg.KeyActive, ExpiresAt: now - 1}, want: problem.Unauthorized},
		// Expiry is checked first: an expired key is unknown, whatever
		// else its record says.
		{name: "expired and suspended", rec: proxycfg.KeyRecord{Status: proxycfg.KeySuspended, ExpiresAt: now - 1}, want: problem.Unauthorized},
		{name: "expired past due within grace", rec: proxycfg.KeyRecord{Status: proxycfg.KeyPastDue, GraceUntil: now + 60, ExpiresAt: now},
			want: problem.Unauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, payment := keyProblem(&tc.rec, now)
			if got != tc.want || payment != tc.payment {
				t.Fatalf("keyProblem = %v, %v; want %v, %v", code(got), payment, code(tc.want), tc.payment)
			}
		})
	}
}

func code(p *problem.Problem) string {
	if p == nil {
		return "serve"
	}
	return p.Code
}

func TestPaymentProblems(t *testing.T) {
	// Not parallel: it counts allocations.
	var c paymentProblems
	if got := c.get(""); got != problem.PaymentRequired {
		t.Fatal("no billing URL: want the fixed problem")
	}
	const url = "https://acme.developers.example.com/billing/s/123?x=\"<>&"
	p := c.get(url)
	if p.Status != 402 || p.Code != "payment-required" || p.BillingURL != url {
		t.Fatalf("problem %+v", p)
	}
	var doc struct {
		Type       string `json:"type"`
		Status     int    `json:"status"`
		Code       string `json:"code"`
		BillingURL string `json:"billing_url"`
	}
	if err := json.Unmarshal(p.Body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Type != problem.TypeBase+"payment-required" || doc.Status != 402 || doc.Code != "payment-required" || doc.BillingURL != url {
		t.Fatalf("body %s", p.Body)
	}
	if c.get(url) != p {
		t.Fatal("second get rendered again")
	}
	if n := testing.AllocsPerRun(100, func() { c.get(url) }); n != 0 {
		t.Fatalf("cached get allocates %v times", n)
	}
	// The cache is bounded: it starts over when full.
	for i := range 2 * maxPaymentProblems {
		c.get("https://b.test/" + strconv.Itoa(i))
	}
	if n := len(c.m); n > maxPaymentProblems {
		t.Fatalf("cache holds %d problems, bound %d", n, maxPaymentProblems)
	}
}
