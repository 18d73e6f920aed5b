package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/storetest"
)

// TestTenantCreateCommand runs `tollgate tenant create` through run, as an
// operator would: a tenant and a shown-once admin token, then a clear error
// for a taken slug and for a bad one.
func TestTenantCreateCommand(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"TOLLGATE_DATABASE_URL": storetest.NewDatabase(t),
		"TOLLGATE_SECRET":       "tenant-cli-secret-" + randHex(8),
		"TOLLGATE_LOG_LEVEL":    "error",
	}
	getenv := func(k string) string { return env[k] }
	ctx := context.Background()

	var out bytes.Buffer
	if err := run(ctx, []string{"tenant", "create", "-name", "Acme", "-slug", "acme"}, &out, getenv); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "tenant acme (Acme) created") || !strings.Contains(out.String(), "admin token (shown once): tga_") {
		t.Fatalf("output %q", out.String())
	}
	for _, tc := range []struct {
		name, slug, want string
	}{
		{"taken slug", "acme", "409"},
		{"bad slug", "Bad Slug", "422"},
	} {
		err := run(ctx, []string{"tenant", "create", "-name", "X", "-slug", tc.slug}, &out, getenv)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "slug") {
			t.Errorf("%s: error %v, want a %s naming the slug", tc.name, err, tc.want)
		}
	}
}
