package catalog_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
)

// TestParseOpenAPIRefusesUnroutablePaths checks that the import refuses the
// paths the proxy could not route (proxycfg.ValidateRoute), so that a stored
// route can never make a compiled snapshot invalid.
func TestParseOpenAPIRefusesUnroutablePaths(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		path   string
		reason string
	}{
		{name: "unclosed brace", path: "/x/{id", reason: "unclosed"},
		{name: "stray brace", path: "/x/id}", reason: "without {"},
		{name: "space", path: "/x y", reason: "space"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			doc := "openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths:\n  '/ok':\n    get: {responses: {'200': {description: ok}}}\n" +
				"  '" + tc.path + "':\n    get: {responses: {'200': {description: ok}}}\n"
			_, _, err := catalog.ParseOpenAPI(context.Background(), []byte(doc))
			var ve *fault.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a validation error", err)
			}
			all := ""
			for _, fe := range ve.Errors {
				all += fe.Message + "\n"
			}
			if !strings.Contains(all, tc.reason) {
				t.Fatalf("reasons %q lack %q", all, tc.reason)
			}
		})
	}
}
