package devportal

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/mgmtapi"
	"github.com/tollgate/tollgate/services/sdk"
	"github.com/tollgate/tollgate/services/tenancy"
	"github.com/tollgate/tollgate/web/devportal/tryit"
)

// The public catalogue: published APIs, their documents and SDKs, public
// plans, and the try-it relay. Unpublished APIs and private plans do not
// exist here (404), nor do another tenant's.

// apiAPIView is a published API as developers see it.
type apiAPIView struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Slug     string `json:"slug"`
	BasePath string `json:"base_path"`
	// URL is the API's gateway base URL (TOLLGATE_PROXY_PUBLIC_URL).
	URL  string `json:"url"`
	Auth string `json:"auth"`
	// HasDocument tells whether the API has an OpenAPI document (and so
	// reference docs and SDKs); Version is the document's info.version.
	HasDocument bool   `json:"has_document"`
	Version     string `json:"version"`
	// DocumentURL and SDKs link the downloads when HasDocument.
	DocumentURL *string           `json:"document_url"`
	SDKs        map[string]string `json:"sdks"`
	// PlanIDs are the public plans that give access to the API.
	PlanIDs []string `json:"plan_ids"`
}

// apiViewAPI builds the view of a; versions holds the document version of
// every API of the tenant that has one (DocumentVersions), so that a list
// does not load every document.
func (p *Portal) apiViewAPI(t tenancy.Tenant, a catalog.API, plans []catalog.Plan, versions map[string]string) (apiAPIView, error) {
	v := apiAPIView{ID: a.ID, Name: a.Name, Slug: a.Slug, BasePath: a.BasePath, URL: p.apiURL(t, a), Auth: a.Auth,
		SDKs: map[string]string{}, PlanIDs: []string{}}
	version, ok := versions[a.ID]
	if ok {
		doc := "/api/apis/" + a.ID + "/openapi.json"
		v.HasDocument, v.Version, v.DocumentURL = true, version, &doc
		if p.opts.SDKs != nil {
			for _, lang := range sdk.Languages {
				v.SDKs[string(lang)] = "/api/apis/" + a.ID + "/sdk/" + string(lang)
			}
		}
	}
	for _, pl := range plans {
		for _, id := range pl.APIIDs {
			if id == a.ID {
				v.PlanIDs = append(v.PlanIDs, pl.ID)
				break
			}
		}
	}
	return v, nil
}

func (p *Portal) apiListAPIs(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	ctx := r.Context()
	list, err := p.opts.Catalog.ListPublishedAPIs(ctx, c.tenant.ID)
	if err != nil {
		return err
	}
	plans, err := p.opts.Catalog.ListPublicPlans(ctx, c.tenant.ID)
	if err != nil {
		return err
	}
	versions, err := p.opts.Catalog.DocumentVersions(ctx, c.tenant.ID)
	if err != nil {
		return err
	}
	out := make([]apiAPIView, 0, len(list))
	for _, a := range list {
		v, err := p.apiViewAPI(c.tenant, a, plans, versions)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	return apiWriteJSON(w, http.StatusOK, apiItemsOf(out))
}

func (p *Portal) apiGetAPI(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	ctx := r.Context()
	a, err := p.opts.Catalog.GetPublishedAPI(ctx, c.tenant.ID, r.PathValue("id"))
	if err != nil {
		return err
	}
	plans, err := p.opts.Catalog.ListPublicPlans(ctx, c.tenant.ID)
	if err != nil {
		return err
	}
	versions, err := p.opts.Catalog.DocumentVersions(ctx, c.tenant.ID)
	if err != nil {
		return err
	}
	v, err := p.apiViewAPI(c.tenant, a, plans, versions)
	if err != nil {
		return err
	}
	return apiWriteJSON(w, http.StatusOK, v)
}

// apiPublishedDocument returns a published API of the tenant and its stored
// document; no document is fault.ErrNotFound.
func (p *Portal) apiPublishedDocument(ctx context.Context, t tenancy.Tenant, id string) (catalog.API, []byte, error) {
	a, err := p.opts.Catalog.GetPublishedAPI(ctx, t.ID, id)
	if err != nil {
		return catalog.API{}, nil, err
	}
	doc, _, _, ok, err := p.opts.Catalog.GetOpenAPIDocument(ctx, t.ID, a.ID)
	if err != nil {
		return catalog.API{}, nil, err
	}
	if !ok {
		return catalog.API{}, nil, sdk.ErrNoDocument
	}
	return a, doc, nil
}

// apiGetAPIDocument serves the API's stored OpenAPI document with its
// servers replaced by the API's gateway URL: developers call the gateway,
// and the tenant's backend addresses stay private.
func (p *Portal) apiGetAPIDocument(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	a, doc, err := p.apiPublishedDocument(r.Context(), c.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	out, err := apiWithServer(doc, p.apiURL(c.tenant, a))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(out)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	w.Header().Set("ETag", etag)
	if apiETagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(out)
	return err
}

// apiWithServer returns the JSON document doc with "servers" set to url alone.
func apiWithServer(doc []byte, serverURL string) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		return nil, err
	}
	servers, err := json.Marshal([]map[string]string{{"url": serverURL, "description": "the API's gateway"}})
	if err != nil {
		return nil, err
	}
	top["servers"] = servers
	return json.Marshal(top)
}

// apiETagMatch reports whether an If-None-Match header names etag.
func apiETagMatch(header, etag string) bool {
	for _, v := range strings.Split(header, ",") {
		v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
		if v == etag || v == "*" {
			return true
		}
	}
	return false
}

// apiSDK serves the zip of one SDK of a published API with a document.
func (p *Portal) apiSDK(lang sdk.Language) apiHandler {
	return func(w http.ResponseWriter, r *http.Request, c *apiCall) error {
		if p.opts.SDKs == nil {
			return fault.ErrNotFound
		}
		ctx := r.Context()
		a, doc, err := p.apiPublishedDocument(ctx, c.tenant, r.PathValue("id"))
		if err != nil {
			return err
		}
		art, err := p.opts.SDKs.Build(ctx, sdk.Request{Language: lang, APIID: a.ID, APISlug: a.Slug, APIName: a.Name,
			TenantSlug: c.tenant.Slug, BaseURL: p.apiURL(c.tenant, a), Document: doc})
		var ge *sdk.GenerateError
		if errors.As(err, &ge) {
			p.log.Warn("devportal api: sdk generation failed", "tenant", c.tenant.Slug, "api", a.ID, "language", lang, "err", err)
			writeAPIProblem(w, mgmtapi.Problem{Type: mgmtapi.ProblemBase + "sdk-unavailable", Title: "SDK unavailable",
				Status: http.StatusUnprocessableEntity, Detail: ge.Message})
			return nil
		}
		if err != nil {
			return err
		}
		etag := `"` + art.SHA256 + `"`
		h := w.Header()
		h.Set("ETag", etag)
		h.Set("X-Checksum-SHA256", art.SHA256)
		h.Set("X-SDK-Version", art.Version)
		if apiETagMatch(r.Header.Get("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
		h.Set("Content-Type", "application/zip")
		h.Set("Content-Disposition", `attachment; filename="`+art.FileName+`"`)
		_, err = w.Write(art.Zip)
		return err
	}
}

// apiPlanView is a public plan as developers see it.
type apiPlanView struct {
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	RateLimit        catalog.RateLimit `json:"rate_limit"`
	Quota            catalog.Quota     `json:"quota"`
	Price            *catalog.Price    `json:"price"`
	Concurrency      int64             `json:"concurrency"`
	ApprovalRequired bool              `json:"approval_required"`
	// APIIDs are the published APIs the plan gives access to (unpublished
	// ones are left out).
	APIIDs []string `json:"api_ids"`
}

func apiViewPlan(pl catalog.Plan, published map[string]bool) apiPlanView {
	v := apiPlanView{ID: pl.ID, Name: pl.Name, RateLimit: pl.RateLimit, Quota: pl.Quota, Price: pl.Price,
		Concurrency: pl.Concurrency, ApprovalRequired: pl.ApprovalRequired, APIIDs: []string{}}
	for _, id := range pl.APIIDs {
		if published[id] {
			v.APIIDs = append(v.APIIDs, id)
		}
	}
	return v
}

func (p *Portal) apiPublishedIDs(ctx context.Context, tenantID string) (map[string]bool, error) {
	list, err := p.opts.Catalog.ListPublishedAPIs(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	ids := make(map[string]bool, len(list))
	for _, a := range list {
		ids[a.ID] = true
	}
	return ids, nil
}

func (p *Portal) apiListPlans(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	ctx := r.Context()
	plans, err := p.opts.Catalog.ListPublicPlans(ctx, c.tenant.ID)
	if err != nil {
		return err
	}
	published, err := p.apiPublishedIDs(ctx, c.tenant.ID)
	if err != nil {
		return err
	}
	out := make([]apiPlanView, 0, len(plans))
	for _, pl := range plans {
		out = append(out, apiViewPlan(pl, published))
	}
	return apiWriteJSON(w, http.StatusOK, apiItemsOf(out))
}

// apiPublicPlan returns a public plan of the tenant; a private one is not found.
func (p *Portal) apiPublicPlan(ctx context.Context, tenantID, id string) (catalog.Plan, error) {
	pl, err := p.opts.Catalog.GetPlan(ctx, tenantID, id)
	if err != nil {
		return catalog.Plan{}, err
	}
	if !pl.Public {
		return catalog.Plan{}, fault.ErrNotFound
	}
	return pl, nil
}

func (p *Portal) apiGetPlan(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	ctx := r.Context()
	pl, err := p.apiPublicPlan(ctx, c.tenant.ID, r.PathValue("id"))
	if err != nil {
		return err
	}
	published, err := p.apiPublishedIDs(ctx, c.tenant.ID)
	if err != nil {
		return err
	}
	return apiWriteJSON(w, http.StatusOK, apiViewPlan(pl, published))
}

// apiTryIt returns the handler of the try-it relay: a signed-in developer's
// request, composed in the reference docs' console, goes to the gateway URL
// of a published API of the host's tenant and nowhere else.
func (p *Portal) apiTryIt() apiHandler {
	rl := &tryit.Relay{
		Gateway: func(ctx context.Context, apiID string) (*url.URL, bool) {
			t, ok := ctx.Value(tenantKey).(tenancy.Tenant)
			if !ok || t.ID == "" {
				return nil, false
			}
			a, err := p.opts.Catalog.GetPublishedAPI(ctx, t.ID, apiID)
			if err != nil {
				if !errors.Is(err, fault.ErrNotFound) {
					p.log.Error("devportal api: try-it api lookup", "tenant", t.Slug, "api", apiID, "err", err)
				}
				return nil, false
			}
			u, err := url.Parse(p.apiURL(t, a))
			if err != nil {
				p.log.Error("devportal api: try-it gateway url", "tenant", t.Slug, "api", apiID, "err", err)
				return nil, false
			}
			return u, true
		},
		DialAddr: p.opts.GatewayDial,
		Logger:   p.log,
	}
	return func(w http.ResponseWriter, r *http.Request, _ *apiCall) error {
		rl.ServeHTTP(w, r)
		return nil
	}
}
