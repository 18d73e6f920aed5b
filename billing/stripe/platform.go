package stripe

import (
	"context"

	stripego "github.com/stripe/stripe-go/v76"
)

// Platform returns the calls the platform makes on its own account: the
// only calls without a Stripe-Account header. Keep them here, so that a
// reader (and a test) can tell every platform call from the tenants' ones.
func (c *Client) Platform() Platform { return Platform{c: c} }

// Platform is the handle of the platform's own account.
type Platform struct{ c *Client }

func (p Platform) scope(ctx context.Context, params paramsOf, key string, write bool) error {
	if write && key == "" {
		return ErrNoIdempotencyKey
	}
	pp := params.GetParams()
	pp.Context = ctx
	if key != "" {
		pp.SetIdempotencyKey(key)
	}
	return nil
}

// GetAccount reads a connected account, to check that it exists and is
// connected to the platform.
func (p Platform) GetAccount(ctx context.Context, id string) (*stripego.Account, error) {
	params := &stripego.AccountParams{}
	if err := p.scope(ctx, params, "", false); err != nil {
		return nil, err
	}
	v, err := p.c.api.Accounts.GetByID(id, params)
	return wrap("get account", v, err)
}

// CreateAccount creates a connected account.
func (p Platform) CreateAccount(ctx context.Context, key string, params *stripego.AccountParams) (*stripego.Account, error) {
	if err := p.scope(ctx, params, key, true); err != nil {
		return nil, err
	}
	v, err := p.c.api.Accounts.New(params)
	return wrap("create account", v, err)
}

// CreateAccountLink creates an onboarding link of a connected account.
func (p Platform) CreateAccountLink(ctx context.Context, key string, params *stripego.AccountLinkParams) (*stripego.AccountLink, error) {
	if err := p.scope(ctx, params, key, true); err != nil {
		return nil, err
	}
	v, err := p.c.api.AccountLinks.New(params)
	return wrap("create account link", v, err)
}

// CreateWebhookEndpoint creates a webhook endpoint of the platform
// (connect=true receives the connected accounts' events).
func (p Platform) CreateWebhookEndpoint(ctx context.Context, key string, params *stripego.WebhookEndpointParams) (*stripego.WebhookEndpoint, error) {
	if err := p.scope(ctx, params, key, true); err != nil {
		return nil, err
	}
	v, err := p.c.api.WebhookEndpoints.New(params)
	return wrap("create webhook endpoint", v, err)
}
