package catalog_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/storetest"
)

// TestPerTenantReadsUseIndexes checks that the catalog's reads of one
// tenant's rows can use an index, so that a change of one tenant never
// reads the whole platform's rows (issue 12). With sequential scans
// disabled, the planner still picks one when no index serves the query.
func TestPerTenantReadsUseIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	const tenant, api = `'00000000-0000-0000-0000-000000000001'`, `'00000000-0000-0000-0000-000000000002'`
	tests := []struct {
		name, table, query string
	}{
		{name: "compile reads the routes", table: "api_routes",
			query: `SELECT api_id, method, path FROM api_routes WHERE tenant_id = ` + tenant + ` ORDER BY api_id, path, method`},
		{name: "routes limit", table: "api_routes", query: `SELECT count(*) FROM api_routes WHERE tenant_id = ` + tenant},
		{name: "API delete cascades to plans", table: "plan_apis",
			query: `SELECT 1 FROM plan_apis WHERE tenant_id = ` + tenant + ` AND api_id = ` + api},
	}
	conn, err := db.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := conn.Query(ctx, `EXPLAIN `+tc.query)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, line)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if p := strings.Join(plan, "\n"); strings.Contains(p, "Seq Scan on "+tc.table) {
				t.Fatalf("%s reads every tenant's rows:\n%s", tc.query, p)
			}
		})
	}
}
