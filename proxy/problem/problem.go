// Package problem renders the proxy's error answers as RFC 9457 problem
// details (application/problem+json) with stable type URIs.
//
// The fixed problems are rendered once at start so that the hot path only
// copies bytes; New renders a problem with a custom detail, WithBillingURL
// one that links to where a payment is fixed.
package problem

import (
	"encoding/json"
	"fmt"
)

// ContentType is the media type of every body this package renders.
const ContentType = "application/problem+json"

// TypeBase prefixes every problem type URI; the code follows it.
const TypeBase = "https://tollgate.dev/problems/"

// Problem is one rendered problem detail. Body is the complete JSON document;
// callers must not modify it.
type Problem struct {
	// Code is the stable, machine-readable name, the last segment of the type URI.
	Code string
	// Status is the HTTP status code.
	Status int
	// Title is the short, human-readable summary of the problem type.
	Title string
	// Detail explains this occurrence; it is safe to show to clients.
	Detail string
	// BillingURL is the billing_url extension member of a payment
	// problem: where the client fixes the payment; "" for none.
	BillingURL string
	// Body is the rendered problem+json document.
	Body []byte
}

// The fixed problems of the proxy.
var (
	// Unauthorized: missing, unknown, revoked or foreign credentials.
	Unauthorized = New("unauthorized", 401, "Unauthorized", "A valid API key is required: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.")
	// Forbidden: a valid key whose plan does not include the API.
	Forbidden = New("forbidden", 403, "Forbidden", "The API key's plan does not include this API.")
	// ConsumerSuspended: the key's consumer (developer) or subscription is
	// suspended by the tenant.
	ConsumerSuspended = New("consumer-suspended", 403, "Forbidden", "The API consumer behind this key is suspended by the API provider.")
	// SubscriptionCanceled: the key's subscription is canceled.
	SubscriptionCanceled = New("subscription-canceled", 403, "Forbidden", "The subscription behind this API key is canceled.")
	// PaymentRequired: the key's subscription is past due and its grace
	// period is over. WithBillingURL adds where to pay.
	PaymentRequired = New("payment-required", 402, "Payment Required", "The subscription behind this API key has an unpaid invoice and its grace period has ended; update the payment to use the key again.")
	// NotFound: no tenant for the host or no API for the path.
	NotFound = New("not-found", 404, "Not Found", "No API is served at this host and path.")
	// NoRoute: the API declares routes and none matches the path.
	NoRoute = New("not-found", 404, "Not Found", "There is no route for this path in the API.")
	// MethodNotAllowed: the API declares the path but not the method; the
	// Allow header lists the methods it declares.
	MethodNotAllowed = New("method-not-allowed", 405, "Method Not Allowed", "The API does not accept this method at this path; the Allow header lists the methods it does.")
	// RateLimited: the key's plan rate limit is exhausted.
	RateLimited = New("rate-limited", 429, "Too Many Requests", "The rate limit of the API key's plan is exhausted; retry after the time given in Retry-After.")
	// QuotaExceeded: the plan's quota for the billing period is used up.
	QuotaExceeded = New("quota-exceeded", 429, "Quota Exceeded", "The quota of the API key's plan for this billing period is used up; it resets at the start of the next period (see Retry-After).")
	// ConcurrencyLimited: too many requests of the key are in flight.
	ConcurrencyLimited = New("concurrency-limited", 429, "Too Many Concurrent Requests", "The API key's plan allows fewer requests in flight at once; retry when one has finished.")
	// APIRateLimited: the API's own ceiling, shared by all its callers, is reached.
	APIRateLimited = New("api-rate-limited", 429, "Too Many Requests", "The API is receiving more requests than its provider allows in total; retry after the time given in Retry-After.")
	// BadGateway: the upstream could not be reached or answered badly.
	BadGateway = New("bad-gateway", 502, "Bad Gateway", "The upstream service could not be reached or sent an invalid response.")
	// NoHealthyTarget: every target of the API's upstream is down.
	NoHealthyTarget = New("no-healthy-target", 503, "Service Unavailable", "No healthy upstream target is available for this API.")
	// Unavailable: the gateway itself cannot decide (Redis down on a key cache miss).
	Unavailable = New("unavailable", 503, "Service Unavailable", "The gateway is temporarily unable to serve this request; retry later.")
	// NotReady answers while a worker has no configuration yet (type unavailable).
	NotReady = New("unavailable", 503, "Service Unavailable", "The gateway has not loaded its configuration yet; retry in a moment.")
	// GatewayTimeout: the upstream did not answer in time.
	GatewayTimeout = New("gateway-timeout", 504, "Gateway Timeout", "The upstream service did not answer in time.")
)

type document struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Code   string `json:"code"`
	// BillingURL is an extension member (RFC 9457 section 3.2).
	BillingURL string `json:"billing_url,omitempty"`
}

// New renders a problem. Use it at start or on cold paths; the hot path uses
// the package's pre-rendered problems.
func New(code string, status int, title, detail string) *Problem {
	return render(Problem{Code: code, Status: status, Title: title, Detail: detail})
}

func render(p Problem) *Problem {
	b, err := json.Marshal(document{Type: TypeBase + p.Code, Title: p.Title, Status: p.Status,
		Detail: p.Detail, Code: p.Code, BillingURL: p.BillingURL})
	if err != nil {
		// Marshalling strings and ints cannot fail.
		panic(fmt.Sprintf("problem: render %q: %v", p.Code, err))
	}
	p.Body = b
	return &p
}

// WithDetail returns a copy of p with another detail, for a cold path that
// knows more than the fixed text (for example why a dial was refused).
func (p *Problem) WithDetail(detail string) *Problem {
	c := *p
	c.Detail = detail
	return render(c)
}

// WithBillingURL returns a copy of p whose body also carries billing_url,
// where the client fixes the payment. It renders (allocates) on every call:
// callers on a busy path keep the result.
func (p *Problem) WithBillingURL(url string) *Problem {
	c := *p
	c.BillingURL = url
	return render(c)
}
