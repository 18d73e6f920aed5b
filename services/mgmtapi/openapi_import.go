package mgmtapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
)

// putAPIDocumentEndpoint imports an OpenAPI 3 document (JSON or YAML, the
// raw body) into an API: it is validated with kin-openapi and its
// operations become the API's routes, which the proxy then enforces (404 /
// 405 otherwise). If-Match is checked against the summary GET answers; an
// API without a document has none, which no If-Match matches.
func (a *api) putAPIDocumentEndpoint() endpoint {
	return endpoint{inDocument: true, out: typeOf[APIDocument](), status: http.StatusOK, ifMatch: true,
		current: a.currentAPIDocument,
		handle: func(w http.ResponseWriter, r *http.Request, c *call) error {
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
			return writeJSON(w, c, http.StatusOK, apiDocumentOf(imp))
		}}
}

// getAPIDocument returns the API's imported document summary and routes.
func (a *api) getAPIDocument(r *http.Request, c *call) (APIDocument, error) {
	imp, ok, err := a.cat.GetOpenAPIImport(r.Context(), c.actor.TenantID, r.PathValue("id"))
	if err != nil {
		return APIDocument{}, err
	}
	if !ok {
		return APIDocument{}, fmt.Errorf("no OpenAPI document imported: %w", fault.ErrNotFound)
	}
	return apiDocumentOf(imp), nil
}

// currentAPIDocument is the summary of the API's document for If-Match: nil
// when the API has none (a missing API is not found).
func (a *api) currentAPIDocument(r *http.Request, c *call) (any, error) {
	imp, ok, err := a.cat.GetOpenAPIImport(r.Context(), c.actor.TenantID, r.PathValue("id"))
	if err != nil || !ok {
		return nil, err
	}
	return apiDocumentOf(imp), nil
}

// exportAPIDocument returns the API's stored document itself.
func (a *api) exportAPIDocument(r *http.Request, c *call) (OpenAPIDocument, error) {
	if _, err := a.cat.GetAPI(r.Context(), c.actor.TenantID, r.PathValue("id")); err != nil {
		return nil, err
	}
	raw, _, _, ok, err := a.cat.GetOpenAPIDocument(r.Context(), c.actor.TenantID, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("no OpenAPI document imported: %w", fault.ErrNotFound)
	}
	var doc OpenAPIDocument
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("decode stored document: %w", err)
	}
	return doc, nil
}
