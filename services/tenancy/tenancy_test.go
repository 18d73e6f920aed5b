package tenancy_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/storetest"
	"github.com/tollgate/tollgate/services/tenancy"
)

// TestReservedSlugs: labels of the platform's own domains and names such
// as www, api, admin and portal are never a tenant's.
func TestReservedSlugs(t *testing.T) {
	t.Parallel()
	db := storetest.NewPool(t)
	for _, slug := range []string{"www", "api", "admin", "portal", "developers"} {
		_, _, err := tenancy.Create(context.Background(), db, []byte("0123456789abcdef0123"), "X", slug)
		var ve *fault.ValidationError
		if !errors.As(err, &ve) || ve.Errors[0].Field != "slug" {
			t.Errorf("slug %q: %v", slug, err)
		}
	}
	if _, _, err := tenancy.Create(context.Background(), db, []byte("0123456789abcdef0123"), "Acme", "acme"); err != nil {
		t.Fatal(err)
	}
}
