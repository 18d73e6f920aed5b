package catalog

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/services/store"
)

// Gateway is one tenant's gateway objects as stored: what the data plane
// is compiled from (services/publish maps it to the contract, proxycfg).
// Every list is in creation order, so that equal data reads equal.
type Gateway struct {
	TenantID   string
	TenantSlug string
	// Upstreams have their targets, in position order.
	Upstreams []Upstream
	APIs      []API
	// Routes are the operations imported from each API's OpenAPI document,
	// by API id, ordered by path and method; an API without a document has
	// none.
	Routes map[string][]Route
	// Plans have their APIs (APIIDs) in the APIs' creation order.
	Plans []Plan
}

// ReadGateways returns the gateway objects of the tenant tenantID, or of
// every tenant when tenantID is "", ordered by tenant slug, as q sees them:
// the publisher passes one REPEATABLE READ transaction, so that what it
// compiles is one consistent state; a change passes its own transaction to
// measure the tenant it is changing. A tenant id that does not exist reads
// as no tenant. The queries are the catalog's own (columns, scanners and
// the targets' and plans' loaders), so the compiler repeats none of them.
func ReadGateways(ctx context.Context, q store.Querier, tenantID string) ([]Gateway, error) {
	if tenantID != "" && !store.ValidID(tenantID) {
		return []Gateway{}, nil
	}
	sc := gatewayScope(tenantID)
	out := []Gateway{}
	idx := map[string]int{}
	rows, err := q.Query(ctx, `SELECT id::text, slug FROM tenants`+sc.where("id")+` ORDER BY slug`, sc.args()...)
	if err != nil {
		return nil, fmt.Errorf("read tenants: %w", err)
	}
	for rows.Next() {
		g := Gateway{Upstreams: []Upstream{}, APIs: []API{}, Routes: map[string][]Route{}, Plans: []Plan{}}
		if err := rows.Scan(&g.TenantID, &g.TenantSlug); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read tenants: %w", err)
		}
		idx[g.TenantID] = len(out)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read tenants: %w", err)
	}
	if len(out) == 0 {
		return out, nil
	}

	ups, err := readByTenant(ctx, q, sc, `SELECT tenant_id::text, `+upstreamCols+` FROM upstreams`, scanUpstream)
	if err != nil {
		return nil, fmt.Errorf("read upstreams: %w", err)
	}
	if err := loadTargets(ctx, q, ups.items); err != nil {
		return nil, err
	}
	for i, u := range ups.items {
		if ti, ok := idx[ups.tenants[i]]; ok {
			out[ti].Upstreams = append(out[ti].Upstreams, u)
		}
	}

	apis, err := readByTenant(ctx, q, sc, `SELECT tenant_id::text, `+apiCols+` FROM apis`, scanAPI)
	if err != nil {
		return nil, fmt.Errorf("read apis: %w", err)
	}
	for i, a := range apis.items {
		if ti, ok := idx[apis.tenants[i]]; ok {
			out[ti].APIs = append(out[ti].APIs, a)
		}
	}
	if err := readRoutes(ctx, q, sc, out, idx); err != nil {
		return nil, err
	}

	plans, err := readByTenant(ctx, q, sc, `SELECT tenant_id::text, `+planCols+` FROM plans`, scanPlan)
	if err != nil {
		return nil, fmt.Errorf("read plans: %w", err)
	}
	if err := loadPlanAPIs(ctx, q, plans.items); err != nil {
		return nil, err
	}
	for i, p := range plans.items {
		if ti, ok := idx[plans.tenants[i]]; ok {
			out[ti].Plans = append(out[ti].Plans, p)
		}
	}
	return out, nil
}

// gatewayScope narrows ReadGateways' queries to one tenant ("" for all).
type gatewayScope string

func (sc gatewayScope) where(col string) string {
	if sc == "" {
		return ""
	}
	return " WHERE " + col + " = $1"
}

func (sc gatewayScope) args() []any {
	if sc == "" {
		return nil
	}
	return []any{string(sc)}
}

// byTenant are rows of several tenants with the tenant of each.
type byTenant[T any] struct {
	items   []T
	tenants []string
}

// readByTenant runs query (which selects tenant_id and then the columns
// scan reads, from a table with tenant_id, created_at and id) in the scope,
// in creation order.
func readByTenant[T any](ctx context.Context, q store.Querier, sc gatewayScope, query string,
	scan func(pgx.Row) (T, error)) (byTenant[T], error) {
	var out byTenant[T]
	rows, err := q.Query(ctx, query+sc.where("tenant_id")+` ORDER BY tenant_id, created_at, id`, sc.args()...)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		var tenantID string
		v, err := scan(tenantRow{row: rows, tenantID: &tenantID})
		if err != nil {
			return out, err
		}
		out.items = append(out.items, v)
		out.tenants = append(out.tenants, tenantID)
	}
	return out, rows.Err()
}

// tenantRow is a row whose first column is the tenant id, followed by the
// columns a catalog scanner reads: it lets the scanners of single-tenant
// queries read rows of several tenants.
type tenantRow struct {
	row      pgx.Row
	tenantID *string
}

func (r tenantRow) Scan(dest ...any) error {
	return r.row.Scan(append([]any{r.tenantID}, dest...)...)
}

// readRoutes fills the Routes of the gateways from api_routes.
func readRoutes(ctx context.Context, q store.Querier, sc gatewayScope, out []Gateway, idx map[string]int) error {
	rows, err := q.Query(ctx, `SELECT tenant_id::text, api_id::text, method, path, operation_id, summary
		FROM api_routes`+sc.where("tenant_id")+` ORDER BY api_id, path, method`, sc.args()...)
	if err != nil {
		return fmt.Errorf("read routes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var tenantID, apiID string
		var r Route
		if err := rows.Scan(&tenantID, &apiID, &r.Method, &r.Path, &r.OperationID, &r.Summary); err != nil {
			return fmt.Errorf("read routes: %w", err)
		}
		if ti, ok := idx[tenantID]; ok {
			out[ti].Routes[apiID] = append(out[ti].Routes[apiID], r)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read routes: %w", err)
	}
	return nil
}
