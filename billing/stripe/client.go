// Package stripe is Tollgate's one Stripe client. It wraps stripe-go so that
// every call made for a tenant names the tenant's connected account (the
// Stripe-Account header) and an idempotency key derived from the operation,
// and so that the few calls the platform makes for itself (creating and
// reading accounts, account links, webhook endpoints) go through a separate,
// explicitly named entry point (Client.Platform). Nothing else in Tollgate
// imports stripe-go except the billing packages, and nothing calls Stripe
// except through this client.
package stripe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// DefaultURL is Stripe's API.
const DefaultURL = stripego.APIURL

// Config configures a Client.
type Config struct {
	// SecretKey is the platform's secret (or restricted) key. Required. It
	// is never logged.
	SecretKey string
	// URL is the API base URL. If "", Stripe's (DefaultURL); tests point it
	// at stripe-mock.
	URL string
	// HTTPClient sends the requests. If nil, a client with a 30s timeout.
	HTTPClient *http.Client
	// MaxNetworkRetries is how often stripe-go itself retries a request
	// that failed in transit (with the same idempotency key). If nil, 2.
	MaxNetworkRetries *int64
}

// Client calls Stripe for the platform and its tenants' connected accounts.
// It is safe for concurrent use.
type Client struct {
	api  *client.API
	live bool
}

// New returns a Client. The key's prefix decides the mode (sk_live_,
// rk_live_ are live; everything else is test), which the webhook handler
// compares with each event's livemode.
func New(cfg Config) (*Client, error) {
	if cfg.SecretKey == "" {
		return nil, errors.New("stripe: a secret key is required")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	url := cfg.URL
	if url == "" {
		url = DefaultURL
	}
	url = strings.TrimRight(url, "/")
	bc := &stripego.BackendConfig{
		URL:        stripego.String(url),
		HTTPClient: hc,
		// stripe-go's default logger writes to stderr; our callers log the
		// errors they get back, with their own context.
		LeveledLogger:     &stripego.LeveledLogger{Level: stripego.LevelNull},
		MaxNetworkRetries: cfg.MaxNetworkRetries,
		EnableTelemetry:   stripego.Bool(false),
	}
	backends := &stripego.Backends{
		API:     stripego.GetBackendWithConfig(stripego.APIBackend, bc),
		Connect: stripego.GetBackendWithConfig(stripego.ConnectBackend, bc),
		Uploads: stripego.GetBackendWithConfig(stripego.UploadsBackend, bc),
	}
	return &Client{api: client.New(cfg.SecretKey, backends),
		live: strings.HasPrefix(cfg.SecretKey, "sk_live_") || strings.HasPrefix(cfg.SecretKey, "rk_live_")}, nil
}

// Live reports whether the platform key is a live-mode key. Events whose
// livemode differs are not applied.
func (c *Client) Live() bool { return c.live }

// IdempotencyKey builds the idempotency key of an operation from its purpose
// and the ids and version that make it unique: "tg:" + parts joined by ":".
// The same operation retried (by stripe-go, by a job's next attempt or
// after a crash) builds the same key, so Stripe answers it once. Stripe
// keeps keys for at least 24 hours.
func IdempotencyKey(purpose string, parts ...string) string {
	return "tg:" + purpose + ":" + strings.Join(parts, ":")
}

// ErrNoAccount is returned for a tenant call without a connected account.
var ErrNoAccount = errors.New("stripe: a connected account is required")

// ErrNoIdempotencyKey is returned for a POST without an idempotency key.
var ErrNoIdempotencyKey = errors.New("stripe: an idempotency key is required")

// Account returns the calls made on the connected account id. It panics on
// nothing; an empty id makes every call fail with ErrNoAccount.
func (c *Client) Account(id string) Account { return Account{c: c, id: id} }

// Account is the handle of one connected account: every call carries its
// Stripe-Account header, and every call that changes something takes an
// idempotency key (see IdempotencyKey).
type Account struct {
	c  *Client
	id string
}

// ID is the connected account's id.
func (a Account) ID() string { return a.id }

// paramsOf is every stripe-go params type.
type paramsOf interface{ GetParams() *stripego.Params }

// scope sets the context, the account and, for writes (key != "" or
// write), the idempotency key on p.
func (a Account) scope(ctx context.Context, p paramsOf, key string, write bool) error {
	if a.id == "" {
		return ErrNoAccount
	}
	if write && key == "" {
		return ErrNoIdempotencyKey
	}
	pp := p.GetParams()
	pp.Context = ctx
	pp.SetStripeAccount(a.id)
	if key != "" {
		pp.SetIdempotencyKey(key)
	}
	return nil
}

// wrap names the operation in the error of a Stripe call.
func wrap[T any](op string, v T, err error) (T, error) {
	if err != nil {
		var zero T
		return zero, fmt.Errorf("stripe %s: %w", op, err)
	}
	return v, nil
}

// CreateProduct creates a product on the account.
func (a Account) CreateProduct(ctx context.Context, key string, p *stripego.ProductParams) (*stripego.Product, error) {
	if err := a.scope(ctx, p, key, true); err != nil {
		return nil, err
	}
	v, err := a.c.api.Products.New(p)
	return wrap("create product", v, err)
}

// UpdateProduct changes a product of the account (active=false archives it).
func (a Account) UpdateProduct(ctx context.Context, key, id string, p *stripego.ProductParams) (*stripego.Product, error) {
	if err := a.scope(ctx, p, key, true); err != nil {
		return nil, err
	}
	v, err := a.c.api.Products.Update(id, p)
	return wrap("update product", v, err)
}

// CreatePrice creates a price on the account.
func (a Account) CreatePrice(ctx context.Context, key string, p *stripego.PriceParams) (*stripego.Price, error) {
	if err := a.scope(ctx, p, key, true); err != nil {
		return nil, err
	}
	v, err := a.c.api.Prices.New(p)
	return wrap("create price", v, err)
}

// UpdatePrice changes a price of the account (active=false archives it).
func (a Account) UpdatePrice(ctx context.Context, key, id string, p *stripego.PriceParams) (*stripego.Price, error) {
	if err := a.scope(ctx, p, key, true); err != nil {
		return nil, err
	}
	v, err := a.c.api.Prices.Update(id, p)
	return wrap("update price", v, err)
}

// CreateMeter creates a Billing Meter on the account.
func (a Account) CreateMeter(ctx context.Context, key string, p *stripego.BillingMeterParams) (*stripego.BillingMeter, error) {
	if err := a.scope(ctx, p, key, true); err != nil {
		return nil, err
	}
	v, err := a.c.api.BillingMeters.New(p)
	return wrap("create meter", v, err)
}

// CreateCustomer creates a customer on the account.
func (a Account) CreateCustomer(ctx context.Context, key string, p *stripego.CustomerParams) (*stripego.Customer, error) {
	if err := a.scope(ctx, p, key, true); err != nil {
		return nil, err
	}
	v, err := a.c.api.Customers.New(p)
	return wrap("create customer", v, err)
}

// CreateCheckoutSession creates a Checkout Session on the account.
func (a Account) CreateCheckoutSession(ctx context.Context, key string, p *stripego.CheckoutSessionParams) (*stripego.CheckoutSession, error) {
	if err := a.scope(ctx, p, key, true); err != nil {
		return nil, err
	}
	v, err := a.c.api.CheckoutSessions.New(p)
	return wrap("create checkout session", v, err)
}

// CreatePortalSession creates a Customer Portal session on the account.
func (a Account) CreatePortalSession(ctx context.Context, key string, p *stripego.BillingPortalSessionParams) (*stripego.BillingPortalSession, error) {
	if err := a.scope(ctx, p, key, true); err != nil {
		return nil, err
	}
	v, err := a.c.api.BillingPortalSessions.New(p)
	return wrap("create portal session", v, err)
}

// GetSubscription reads a subscription of the account.
func (a Account) GetSubscription(ctx context.Context, id string) (*stripego.Subscription, error) {
	p := &stripego.SubscriptionParams{}
	if err := a.scope(ctx, p, "", false); err != nil {
		return nil, err
	}
	v, err := a.c.api.Subscriptions.Get(id, p)
	return wrap("get subscription", v, err)
}

// UpdateSubscription changes a subscription of the account.
func (a Account) UpdateSubscription(ctx context.Context, key, id string, p *stripego.SubscriptionParams) (*stripego.Subscription, error) {
	if err := a.scope(ctx, p, key, true); err != nil {
		return nil, err
	}
	v, err := a.c.api.Subscriptions.Update(id, p)
	return wrap("update subscription", v, err)
}

// CancelSubscription cancels a subscription of the account now (DELETE;
// it carries the idempotency key too).
func (a Account) CancelSubscription(ctx context.Context, key, id string, p *stripego.SubscriptionCancelParams) (*stripego.Subscription, error) {
	if err := a.scope(ctx, p, key, true); err != nil {
		return nil, err
	}
	v, err := a.c.api.Subscriptions.Cancel(id, p)
	return wrap("cancel subscription", v, err)
}

// CreateSubscriptionSchedule creates a subscription schedule on the account
// (from_subscription takes over an existing subscription).
func (a Account) CreateSubscriptionSchedule(ctx context.Context, key string, p *stripego.SubscriptionScheduleParams) (*stripego.SubscriptionSchedule, error) {
	if err := a.scope(ctx, p, key, true); err != nil {
		return nil, err
	}
	v, err := a.c.api.SubscriptionSchedules.New(p)
	return wrap("create subscription schedule", v, err)
}

// UpdateSubscriptionSchedule changes a subscription schedule of the account.
func (a Account) UpdateSubscriptionSchedule(ctx context.Context, key, id string, p *stripego.SubscriptionScheduleParams) (*stripego.SubscriptionSchedule, error) {
	if err := a.scope(ctx, p, key, true); err != nil {
		return nil, err
	}
	v, err := a.c.api.SubscriptionSchedules.Update(id, p)
	return wrap("update subscription schedule", v, err)
}

// MeterEventIdempotencyKey is the idempotency key MeterEvent sends for an
// identifier.
func MeterEventIdempotencyKey(identifier string) string {
	return IdempotencyKey("meter-event", identifier)
}

// MeterEvent reports value units of usage of the customer to the meter with
// eventName on the connected account, at ts, under identifier. Stripe keeps
// the first value sent under an identifier (for at least 24 hours), and the
// request carries the idempotency key MeterEventIdempotencyKey(identifier),
// so sending the same identifier again never counts twice; send late usage
// under a new identifier. The payload keys are MeterCustomerKey and
// MeterValueKey, as the meters billing creates expect. Refused(err) tells a
// request Stripe will never accept (for example a timestamp outside its
// window) from one worth retrying.
func (c *Client) MeterEvent(ctx context.Context, account, eventName, identifier, customer string, value int64, ts time.Time) error {
	if identifier == "" || eventName == "" || customer == "" {
		return errors.New("stripe: meter event: event name, identifier and customer are required")
	}
	p := &stripego.BillingMeterEventParams{
		EventName:  stripego.String(eventName),
		Identifier: stripego.String(identifier),
		Payload:    map[string]string{MeterCustomerKey: customer, MeterValueKey: strconv.FormatInt(value, 10)},
		Timestamp:  stripego.Int64(ts.Unix()),
	}
	a := c.Account(account)
	if err := a.scope(ctx, p, MeterEventIdempotencyKey(identifier), true); err != nil {
		return err
	}
	_, err := c.api.BillingMeterEvents.New(p)
	if err != nil {
		return fmt.Errorf("stripe meter event: %w", err)
	}
	return nil
}

// Payload keys of the meters billing creates: the customer is mapped by id
// from MeterCustomerKey, the value summed from MeterValueKey.
const (
	MeterCustomerKey = "stripe_customer_id"
	MeterValueKey    = "value"
)

// Refused reports whether err is an answer by which Stripe refuses the
// request as such (a 4xx other than 429 rate limiting and 409 idempotency
// or lock conflicts): sending it again will not help. Network errors, 5xx,
// 409 and 429 are not refusals.
func Refused(err error) bool {
	var se *stripego.Error
	if !errors.As(err, &se) {
		return false
	}
	s := se.HTTPStatusCode
	return s >= 400 && s < 500 && s != http.StatusTooManyRequests && s != http.StatusConflict
}

// NotFound reports whether err is Stripe's 404 for a missing object.
func NotFound(err error) bool {
	var se *stripego.Error
	return errors.As(err, &se) && (se.HTTPStatusCode == http.StatusNotFound || se.Code == stripego.ErrorCodeResourceMissing)
}
