package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/services/outbox"
	"github.com/tollgate/tollgate/services/store"
)

// OpenAPI import limits.
const (
	MaxOpenAPIBytes  = 2 << 20
	MaxImportedRoute = 2000
	maxImportReasons = 20
)

// Route is one operation of an API (method and path template), imported from
// its OpenAPI document.
type Route struct {
	Method      string `json:"method"`
	Path        string `json:"path"`
	OperationID string `json:"operation_id"`
	Summary     string `json:"summary"`
}

// OpenAPIImport is the outcome of importing a document into an API.
type OpenAPIImport struct {
	Title      string    `json:"title"`
	Version    string    `json:"version"`
	Routes     []Route   `json:"routes"`
	ImportedAt time.Time `json:"imported_at"`
}

// ParseOpenAPI loads and validates an OpenAPI 3 document (JSON or YAML) with
// kin-openapi and returns its routes. External references are refused. A bad
// document is a ValidationError of the field "document" that lists every
// reason kin-openapi found.
func ParseOpenAPI(ctx context.Context, doc []byte) (OpenAPIImport, json.RawMessage, error) {
	invalid := func(reasons ...string) error {
		v := &fault.ValidationError{}
		for i, r := range reasons {
			if i == maxImportReasons {
				v.Add("document", "... and %d more problems", len(reasons)-i)
				break
			}
			v.Add("document", "%s", r)
		}
		return v.Err()
	}
	if len(strings.TrimSpace(string(doc))) == 0 {
		return OpenAPIImport{}, nil, invalid("is required: paste or upload an OpenAPI 3 document (JSON or YAML)")
	}
	if len(doc) > MaxOpenAPIBytes {
		return OpenAPIImport{}, nil, invalid(fmt.Sprintf("must be at most %d MiB", MaxOpenAPIBytes>>20))
	}
	loader := openapi3.NewLoader()
	loader.Context = ctx
	loader.IsExternalRefsAllowed = false
	t, err := loader.LoadFromData(doc)
	if err != nil {
		return OpenAPIImport{}, nil, invalid("cannot be read as an OpenAPI document: " + err.Error())
	}
	if !strings.HasPrefix(t.OpenAPI, "3.") {
		return OpenAPIImport{}, nil, invalid(fmt.Sprintf("must be OpenAPI 3.x (the document says openapi: %q; convert Swagger 2.0 documents first)", t.OpenAPI))
	}
	if err := t.Validate(ctx, openapi3.EnableMultiError()); err != nil {
		var me openapi3.MultiError
		if errors.As(err, &me) {
			reasons := make([]string, 0, len(me))
			for _, e := range me {
				reasons = append(reasons, e.Error())
			}
			return OpenAPIImport{}, nil, invalid(reasons...)
		}
		return OpenAPIImport{}, nil, invalid(err.Error())
	}
	var routes []Route
	var unroutable []string
	if t.Paths != nil {
		for path, item := range t.Paths.Map() {
			for method, op := range item.Operations() {
				r := Route{Method: strings.ToUpper(method), Path: path, OperationID: op.OperationID, Summary: op.Summary}
				// The proxy routes by these; refuse what it could not.
				if err := proxycfg.ValidateRoute(proxycfg.Route{Method: r.Method, Path: r.Path}); err != nil {
					unroutable = append(unroutable, fmt.Sprintf("%s %s cannot be routed: %v", r.Method, r.Path, err))
					continue
				}
				routes = append(routes, r)
			}
		}
	}
	if len(unroutable) > 0 {
		slices.Sort(unroutable)
		return OpenAPIImport{}, nil, invalid(unroutable...)
	}
	if len(routes) == 0 {
		return OpenAPIImport{}, nil, invalid("has no operations under paths: nothing to route")
	}
	if len(routes) > MaxImportedRoute {
		return OpenAPIImport{}, nil, invalid(fmt.Sprintf("has %d operations; at most %d are supported", len(routes), MaxImportedRoute))
	}
	slices.SortFunc(routes, func(a, b Route) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Method, b.Method)
	})
	normalized, err := json.Marshal(t)
	if err != nil {
		// kin-openapi read something it cannot write back: the tenant's
		// input, so a refusal, not an internal error.
		return OpenAPIImport{}, nil, invalid("cannot be stored as JSON: " + err.Error())
	}
	imp := OpenAPIImport{Routes: routes}
	if t.Info != nil {
		imp.Title, imp.Version = t.Info.Title, t.Info.Version
	}
	return imp, normalized, nil
}

// ImportOpenAPI validates doc (see ParseOpenAPI) and stores it and its routes
// with the API, replacing a previous import. From then on the proxy serves
// only those routes of the API (404 for other paths, 405 for other methods);
// the change is published like any other.
func (s *Service) ImportOpenAPI(ctx context.Context, who audit.Actor, apiID string, doc []byte) (OpenAPIImport, error) {
	imp, normalized, err := ParseOpenAPI(ctx, doc)
	if err != nil {
		return OpenAPIImport{}, err
	}
	err = store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		lim, err := s.beginLimits(ctx, tx, who.TenantID)
		if err != nil {
			return err
		}
		if _, err := getAPI(ctx, tx, who.TenantID, apiID, true); err != nil {
			return err
		}
		// The new document's routes replace the API's: the tenant's routes
		// after the import are the others' and these.
		var total, mine int64
		if err := tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE api_id = $2) FROM api_routes
			WHERE tenant_id = $1`, who.TenantID, apiID).Scan(&total, &mine); err != nil {
			return fmt.Errorf("count routes: %w", err)
		}
		if err := checkGrowth(lim, limits.Routes, total, total-mine+int64(len(imp.Routes)), "document"); err != nil {
			return err
		}
		before, err := s.configSize(ctx, tx, who.TenantID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM api_routes WHERE tenant_id = $1 AND api_id = $2`, who.TenantID, apiID); err != nil {
			return fmt.Errorf("replace routes: %w", err)
		}
		rows := make([][]any, len(imp.Routes))
		for i, r := range imp.Routes {
			rows[i] = []any{who.TenantID, apiID, r.Method, r.Path, r.OperationID, r.Summary}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"api_routes"},
			[]string{"tenant_id", "api_id", "method", "path", "operation_id", "summary"}, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("insert routes: %w", err)
		}
		if err := tx.QueryRow(ctx, `INSERT INTO api_documents (tenant_id, api_id, title, version, document)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (api_id) DO UPDATE SET title = $3, version = $4, document = $5, imported_at = now()
			RETURNING imported_at`, who.TenantID, apiID, imp.Title, imp.Version, normalized).Scan(&imp.ImportedAt); err != nil {
			return fmt.Errorf("store document: %w", err)
		}
		if err := s.checkConfigGrowth(ctx, tx, lim, who.TenantID, before); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, who, "api.import_openapi", "api", apiID,
			map[string]any{"title": imp.Title, "version": imp.Version, "routes": len(imp.Routes)}); err != nil {
			return err
		}
		return outbox.MarkChanged(ctx, tx, who.TenantID)
	})
	if err != nil {
		return OpenAPIImport{}, fmt.Errorf("import openapi: %w", err)
	}
	return imp, nil
}

// GetOpenAPIImport returns the last import of an API of the tenant; ok is
// false when the API has none.
func (s *Service) GetOpenAPIImport(ctx context.Context, tenantID, apiID string) (imp OpenAPIImport, ok bool, err error) {
	if _, err := getAPI(ctx, s.DB, tenantID, apiID, false); err != nil {
		return OpenAPIImport{}, false, fmt.Errorf("get openapi import: %w", err)
	}
	err = s.DB.QueryRow(ctx, `SELECT title, version, imported_at FROM api_documents WHERE tenant_id = $1 AND api_id = $2`,
		tenantID, apiID).Scan(&imp.Title, &imp.Version, &imp.ImportedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return OpenAPIImport{}, false, nil
	}
	if err != nil {
		return OpenAPIImport{}, false, fmt.Errorf("get openapi import: %w", err)
	}
	rows, err := s.DB.Query(ctx, `SELECT method, path, operation_id, summary FROM api_routes
		WHERE tenant_id = $1 AND api_id = $2 ORDER BY path, method`, tenantID, apiID)
	if err != nil {
		return OpenAPIImport{}, false, fmt.Errorf("get openapi routes: %w", err)
	}
	imp.Routes, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Route])
	if err != nil {
		return OpenAPIImport{}, false, fmt.Errorf("get openapi routes: %w", err)
	}
	return imp, true, nil
}

// GetOpenAPIDocument returns the stored OpenAPI document of an API of the
// tenant (as imported, JSON) with its version and import time; ok is false
// when the API has none.
func (s *Service) GetOpenAPIDocument(ctx context.Context, tenantID, apiID string) (doc []byte, version string, at time.Time, ok bool, err error) {
	if !store.ValidID(apiID) {
		return nil, "", time.Time{}, false, fmt.Errorf("get openapi document: %w", fault.ErrNotFound)
	}
	err = s.DB.QueryRow(ctx, `SELECT document::text, version, imported_at FROM api_documents WHERE tenant_id = $1 AND api_id = $2`,
		tenantID, apiID).Scan(&doc, &version, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", time.Time{}, false, nil
	}
	if err != nil {
		return nil, "", time.Time{}, false, fmt.Errorf("get openapi document: %w", err)
	}
	return doc, version, at, true, nil
}

// DocumentVersions returns the version of every imported OpenAPI document of
// the tenant's APIs, by API id: what a catalogue shows without loading the
// documents.
func (s *Service) DocumentVersions(ctx context.Context, tenantID string) (map[string]string, error) {
	rows, err := s.DB.Query(ctx, `SELECT api_id::text, version FROM api_documents WHERE tenant_id = $1`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("document versions: %w", err)
	}
	out := map[string]string{}
	for rows.Next() {
		var id, v string
		if err := rows.Scan(&id, &v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("document versions: %w", err)
		}
		out[id] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("document versions: %w", err)
	}
	return out, nil
}
