package mgmtapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
)

// putAPIDocument imports an OpenAPI 3 document (JSON or YAML, the raw body)
// into an API: it is validated with kin-openapi and its operations become
// the API's routes, which the proxy then enforces (404 / 405 otherwise).
func (a *api) putAPIDocument(w http.ResponseWriter, r *http.Request, c *call) error {
	doc, err := io.ReadAll(http.MaxBytesReader(w, r.Body, catalog.MaxOpenAPIBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &requestError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("the document exceeds %d bytes", catalog.MaxOpenAPIBytes)}
	}
	if err != nil {
		return badRequest("", "could not read the request body")
	}
	if len(bytes.TrimSpace(doc)) == 0 {
		return badRequest("", "the body must be an OpenAPI 3 document (JSON or YAML)")
	}
	imp, err := a.cat.ImportOpenAPI(r.Context(), c.actor, r.PathValue("id"), doc)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, imp)
}

// getAPIDocument returns the API's imported document summary and routes.
func (a *api) getAPIDocument(w http.ResponseWriter, r *http.Request, c *call) error {
	imp, ok, err := a.cat.GetOpenAPIImport(r.Context(), c.actor.TenantID, r.PathValue("id"))
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no OpenAPI document imported: %w", fault.ErrNotFound)
	}
	return writeJSON(w, http.StatusOK, imp)
}

// addOpenAPIImportPaths documents the two routes above.
func addOpenAPIImportPaths(paths obj) {
	route := object(obj{"method": str(), "path": str(), "operation_id": str(), "summary": str()})
	imp := object(obj{"title": str(), "version": str(), "imported_at": obj{"type": "string", "format": "date-time"},
		"routes": obj{"type": "array", "items": route}})
	paths["/v1/apis/{id}/openapi"] = obj{
		"parameters": []any{idParam},
		"get":        op("The API's imported OpenAPI document: title, version and routes", "200", okResp(imp), nil),
		"put": op("Import an OpenAPI 3 document (JSON or YAML); its operations become the API's routes", "200", okResp(imp),
			obj{"requestBody": obj{"required": true, "content": obj{
				"application/json": obj{"schema": obj{"type": "object"}},
				"application/yaml": obj{"schema": obj{"type": "string"}}}},
				"responses": obj{"200": okResp(imp), "400": problemResp("Malformed request"), "401": problemResp("Missing or bad token"),
					"404": problemResp("No such API"), "413": problemResp("Document too large"), "422": problemResp("Invalid document, with every reason")}}),
	}
}
