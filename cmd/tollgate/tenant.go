package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/tollgate/tollgate/services/mgmtapi"
	"github.com/tollgate/tollgate/services/mgmtapi/v1client"
	"github.com/tollgate/tollgate/services/publish"
	"github.com/tollgate/tollgate/services/store"
)

// createdTenant is the answer of POST /v1/tenants, for the callers that
// decode it by hand (the dev seed, tests).
type createdTenant struct {
	Tenant struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Slug string `json:"slug"`
	} `json:"tenant"`
	AdminToken string `json:"admin_token"`
}

// cmdTenant is `tollgate tenant create`: POST /v1/tenants through the /v1
// client, against the control plane at TOLLGATE_URL with
// TOLLGATE_OPERATOR_TOKEN when TOLLGATE_URL is set, else in process
// against the database (TOLLGATE_DATABASE_URL) through the handler that
// serves /v1.
func cmdTenant(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) == 0 || args[0] != "create" {
		return fmt.Errorf("usage: tollgate tenant create -name NAME -slug SLUG")
	}
	fs := flag.NewFlagSet("tenant create", flag.ContinueOnError)
	name := fs.String("name", "", "display name of the tenant")
	slug := fs.String("slug", "", "DNS label: the tenant is served at <slug>.<TOLLGATE_PROXY_DOMAIN>")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	c, done, err := operatorClient(ctx, getenv)
	if err != nil {
		return err
	}
	defer done()
	r, err := v1client.Ok(c.CreateTenantWithResponse(ctx, nil, v1client.TenantRequest{Name: *name, Slug: *slug}))
	if err != nil {
		return err
	}
	t := r.JSON201
	fmt.Fprintf(stdout, "tenant %s (%s) created: id %s\n", t.Tenant.Slug, t.Tenant.Name, t.Tenant.Id)
	if t.AdminToken == nil {
		// A replay of an earlier create: the token was shown then, once.
		fmt.Fprintln(stdout, "admin token: not shown again (this answer replays an earlier request)")
		return nil
	}
	fmt.Fprintf(stdout, "admin token (shown once): %s\n", *t.AdminToken)
	return nil
}

// operatorClient is a /v1 client with the operator's rights: over HTTP to
// TOLLGATE_URL, or in process. done releases what it opened.
func operatorClient(ctx context.Context, getenv func(string) string) (*v1client.ClientWithResponses, func(), error) {
	if base := getenv("TOLLGATE_URL"); base != "" {
		tok := getenv("TOLLGATE_OPERATOR_TOKEN")
		if tok == "" {
			return nil, nil, errors.New("TOLLGATE_OPERATOR_TOKEN is required to create a tenant through TOLLGATE_URL")
		}
		c, err := v1client.New(v1client.Options{BaseURL: base, Token: tok})
		return c, func() {}, err
	}
	cfg, err := loadConfig(getenv, true)
	if err != nil {
		return nil, nil, err
	}
	db, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, err
	}
	if err := cfg.resolveDigestKey(ctx, db); err != nil {
		db.Close()
		return nil, nil, err
	}
	// The CLI acts as the operator through the same handler as POST
	// /v1/tenants, with a token of its own for this run.
	op := randomToken()
	h := mgmtapi.New(mgmtapi.Options{DB: db, Secret: cfg.Secret, DigestKey: cfg.DigestKey, OperatorToken: op,
		Logger: cfg.logger(), Limits: cfg.Limits, ConfigSize: publish.TenantConfigBytes})
	c, err := v1client.New(v1client.Options{BaseURL: "http://tollgate.in-process", Token: op, HTTPClient: v1client.Handler{H: h}})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return c, db.Close, nil
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
