package publish

import (
	"context"
	"fmt"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// compileRoutes fills API.Routes from api_routes (the operations imported
// from each API's OpenAPI document), ordered by path and method so that
// equal data compiles to equal snapshots. It runs after every API is in
// tenants. The import validates each route with proxycfg.ValidateRoute; a row
// that still fails it (written by an older version) is left out rather than
// making the whole snapshot, and so every tenant's changes, unpublishable.
func compileRoutes(ctx context.Context, q Querier, sc scope, tenants []proxycfg.Tenant) error {
	apis := map[string]*proxycfg.API{}
	for ti := range tenants {
		for ai := range tenants[ti].APIs {
			a := &tenants[ti].APIs[ai]
			apis[a.ID] = a
		}
	}
	cond, args := sc.where("tenant_id")
	rows, err := q.Query(ctx, `SELECT api_id::text, method, path FROM api_routes`+cond+` ORDER BY api_id, path, method`, args...)
	if err != nil {
		return fmt.Errorf("compile routes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var apiID string
		var r proxycfg.Route
		if err := rows.Scan(&apiID, &r.Method, &r.Path); err != nil {
			return fmt.Errorf("compile routes: %w", err)
		}
		a := apis[apiID]
		if a == nil || proxycfg.ValidateRoute(r) != nil {
			continue
		}
		a.Routes = append(a.Routes, r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("compile routes: %w", err)
	}
	return nil
}
