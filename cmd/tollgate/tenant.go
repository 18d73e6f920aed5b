package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"

	"github.com/tollgate/tollgate/services/mgmtapi"
	"github.com/tollgate/tollgate/services/publish"
	"github.com/tollgate/tollgate/services/store"
)

// createdTenant is the answer of POST /v1/tenants.
type createdTenant struct {
	Tenant struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Slug string `json:"slug"`
	} `json:"tenant"`
	AdminToken string `json:"admin_token"`
}

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
	cfg, err := loadConfig(getenv, true)
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	// The CLI acts as the operator through the same handler as POST /v1/tenants.
	op := randomToken()
	if err := cfg.resolveDigestKey(ctx, db); err != nil {
		return err
	}
	c := apiClient{h: mgmtapi.New(mgmtapi.Options{DB: db, Secret: cfg.Secret, DigestKey: cfg.DigestKey, OperatorToken: op,
		Logger: cfg.logger(), Limits: cfg.Limits, ConfigSize: publish.TenantConfigBytes}), token: op}
	var out createdTenant
	if err := c.do("POST", "/v1/tenants", map[string]string{"name": *name, "slug": *slug}, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "tenant %s (%s) created: id %s\nadmin token (shown once): %s\n",
		out.Tenant.Slug, out.Tenant.Name, out.Tenant.ID, out.AdminToken)
	return nil
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
