package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"

	"gopkg.in/yaml.v3"

	"github.com/tollgate/tollgate/services/mgmtapi/v1client"
)

// `tollgate export` writes the tenant's configuration in the format apply
// reads (declarative.go): YAML by default, JSON with -o json. Fields that
// hold their default are left out, documents are inline, objects are in
// name (APIs: slug) order, so that exporting an unchanged tenant writes
// the same bytes and applying the export changes nothing. No secret is in
// it: the format has none.

func cmdExport(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	format := fs.String("o", "yaml", "output format: yaml or json")
	base, token := tenantClientFlags(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || (*format != "yaml" && *format != "json") {
		return errors.New("usage: tollgate export [-o yaml|json] [-url URL] [-token TOKEN]")
	}
	c, err := newTenantClient(*base, *token)
	if err != nil {
		return err
	}
	tr, err := v1client.Ok(c.GetTenantWithResponse(ctx))
	if err != nil {
		return err
	}
	lv, err := readLive(ctx, c)
	if err != nil {
		return err
	}
	cfg, err := exportConfig(ctx, c, lv)
	if err != nil {
		return err
	}
	if *format == "json" {
		out, err := json.MarshalIndent(cfg, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", out)
		return err
	}
	fmt.Fprintf(stdout, "# The configuration of tenant %s, written by tollgate export.\n# Apply it with: tollgate apply -f FILE\n",
		tr.JSON200.Slug)
	enc := yaml.NewEncoder(stdout)
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		return err
	}
	return enc.Close()
}

// exportConfig is the tenant's configuration in the format, defaults left
// out.
func exportConfig(ctx context.Context, c *v1client.ClientWithResponses, lv *live) (*tenantConfig, error) {
	cfg := &tenantConfig{}
	for _, u := range lv.upstreams {
		s := upstreamSpecOf(u).bare()
		cfg.Upstreams = append(cfg.Upstreams, &s)
	}
	sort.SliceStable(cfg.Upstreams, func(i, j int) bool { return cfg.Upstreams[i].Name < cfg.Upstreams[j].Name })
	for _, a := range lv.apis {
		s := apiSpecOf(a, lv.names).bare()
		doc, err := liveDocument(ctx, c, a.Id)
		if err != nil {
			return nil, fmt.Errorf("read the OpenAPI document of api %s: %w", a.Slug, err)
		}
		if doc != nil {
			s.OpenAPI = &openAPIDoc{value: doc}
		}
		cfg.APIs = append(cfg.APIs, &s)
	}
	sort.SliceStable(cfg.APIs, func(i, j int) bool { return cfg.APIs[i].Slug < cfg.APIs[j].Slug })
	for _, p := range lv.plans {
		s := planSpecOf(p, lv.names).bare()
		cfg.Plans = append(cfg.Plans, &s)
	}
	sort.SliceStable(cfg.Plans, func(i, j int) bool { return cfg.Plans[i].Name < cfg.Plans[j].Name })
	portal := portalSpecOf(lv.portal).bare()
	cfg.Portal = &portal
	return cfg, nil
}
