package portal

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/web/portal/view"
)

// all reads every page of a list, for pickers and small tables.
func all[T any](list func(store.Page) ([]T, string, error)) ([]T, error) {
	var out []T
	page := store.Page{Limit: store.MaxLimit}
	for {
		items, next, err := list(page)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
		if next == "" || len(out) >= 10*store.MaxLimit {
			return out, nil
		}
		page.After = next
	}
}

// intField reads a whole-number input; empty is 0. A bad value is put on the
// form and reported with ok=false.
func intField(f *view.Form, name string) (int64, bool) {
	s := strings.TrimSpace(f.Get(name))
	if s == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f.Errors[name] = "must be a whole number"
		return 0, false
	}
	return n, true
}

// notFound answers 404 for a missing object, including another tenant's.
func (p *Portal) notFound(w http.ResponseWriter, r *http.Request, q *req) {
	p.renderStatus(w, r, http.StatusNotFound, view.ErrorPage(q.chrome("Not found", ""), http.StatusNotFound,
		"There is nothing here. It may have been deleted."))
}

// fail renders a domain error: not found as 404, anything unexpected as 500.
func (p *Portal) fail(w http.ResponseWriter, r *http.Request, q *req, err error) {
	if errors.Is(err, fault.ErrNotFound) {
		p.notFound(w, r, q)
		return
	}
	p.internal(w, r, err)
}

func (p *Portal) apiURL(q *req, basePath string) string {
	return p.proxyURL(q.tenant.Slug) + strings.TrimSuffix(basePath, "/")
}

func (p *Portal) apisList(w http.ResponseWriter, r *http.Request, q *req) {
	ctx := r.Context()
	apis, err := all(func(pg store.Page) ([]catalog.API, string, error) { return p.cat.ListAPIs(ctx, q.tenant.ID, pg) })
	if err != nil {
		p.internal(w, r, err)
		return
	}
	ups, err := all(func(pg store.Page) ([]catalog.Upstream, string, error) {
		return p.cat.ListUpstreams(ctx, q.tenant.ID, pg)
	})
	if err != nil {
		p.internal(w, r, err)
		return
	}
	names := map[string]string{}
	for _, u := range ups {
		names[u.ID] = u.Name
	}
	m := view.APIsPage{C: p.gatewayChrome(r, q, "APIs", "apis"), HasUpstreams: len(ups) > 0}
	for _, a := range apis {
		imp, ok, err := p.cat.GetOpenAPIImport(ctx, q.tenant.ID, a.ID)
		if err != nil {
			p.internal(w, r, err)
			return
		}
		row := view.APIRow{ID: a.ID, Name: a.Name, Slug: a.Slug, BasePath: a.BasePath, Auth: a.Auth,
			Upstream: names[a.UpstreamID], URL: p.apiURL(q, a.BasePath), Published: a.Published}
		if ok {
			row.Routes = len(imp.Routes)
		}
		m.APIs = append(m.APIs, row)
	}
	p.render(w, r, view.APIs(m))
}

func (p *Portal) upstreamOptions(r *http.Request, q *req) ([]view.Option, error) {
	ups, err := all(func(pg store.Page) ([]catalog.Upstream, string, error) {
		return p.cat.ListUpstreams(r.Context(), q.tenant.ID, pg)
	})
	if err != nil {
		return nil, err
	}
	opts := make([]view.Option, 0, len(ups))
	for _, u := range ups {
		opts = append(opts, view.Option{Value: u.ID, Label: u.Name})
	}
	return opts, nil
}

func apiForm(a catalog.API) view.Form {
	f := blankForm()
	f.Values.Set("name", a.Name)
	f.Values.Set("slug", a.Slug)
	f.Values.Set("base_path", a.BasePath)
	f.Values.Set("upstream_id", a.UpstreamID)
	f.Values.Set("auth", a.Auth)
	f.Values.Set("timeout_ms", strconv.Itoa(a.TimeoutMS))
	if a.StripBasePath {
		f.Values.Set("strip_base_path", "on")
	}
	if a.Published {
		f.Values.Set("published", "on")
	}
	return f
}

func (p *Portal) apiNew(w http.ResponseWriter, r *http.Request, q *req) {
	opts, err := p.upstreamOptions(r, q)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	f := apiForm(catalog.API{Auth: "key", StripBasePath: true})
	p.render(w, r, view.APIForm(view.APIFormPage{C: q.chrome("New API", "apis"), Form: f, Upstreams: opts}))
}

// apiInput reads the API form.
func apiInput(f *view.Form) (catalog.APIInput, bool) {
	timeout, ok := intField(f, "timeout_ms")
	strip := f.Get("strip_base_path") == "on"
	return catalog.APIInput{
		Name: f.Get("name"), Slug: strings.TrimSpace(f.Get("slug")), BasePath: strings.TrimSpace(f.Get("base_path")),
		UpstreamID: f.Get("upstream_id"), Auth: f.Get("auth"), StripBasePath: &strip, TimeoutMS: int(timeout),
		Published: f.Get("published") == "on",
	}, ok
}

var apiFields = []string{"name", "slug", "base_path", "upstream_id", "auth", "timeout_ms", "strip_base_path", "published"}

func (p *Portal) apiCreate(w http.ResponseWriter, r *http.Request, q *req) {
	f := readForm(w, r)
	in, ok := apiInput(&f)
	var err error
	var a catalog.API
	if ok {
		a, err = p.cat.CreateAPI(r.Context(), q.user.Actor(), in)
	}
	if !ok || err != nil {
		if err != nil && !applyError(&f, err, apiFields...) {
			p.internal(w, r, err)
			return
		}
		opts, oerr := p.upstreamOptions(r, q)
		if oerr != nil {
			p.internal(w, r, oerr)
			return
		}
		p.renderStatus(w, r, http.StatusUnprocessableEntity, view.APIForm(view.APIFormPage{C: q.chrome("New API", "apis"), Form: f, Upstreams: opts}))
		return
	}
	p.redirect(w, r, "/apis/"+a.ID, fmt.Sprintf("API %s created. It is live at %s within seconds.", a.Name, p.apiURL(q, a.BasePath)))
}

func (p *Portal) apiPage(w http.ResponseWriter, r *http.Request, q *req, id string, f, imf view.Form, status int) {
	ctx := r.Context()
	a, err := p.cat.GetAPI(ctx, q.tenant.ID, id)
	if err != nil {
		p.fail(w, r, q, err)
		return
	}
	if f.Values == nil || len(f.Values) == 0 {
		f = apiForm(a)
	}
	opts, err := p.upstreamOptions(r, q)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	m := view.APIFormPage{C: p.gatewayChrome(r, q, a.Name, "apis"), ID: a.ID, URL: p.apiURL(q, a.BasePath), Form: f, Upstreams: opts, ImportForm: imf}
	imp, ok, err := p.cat.GetOpenAPIImport(ctx, q.tenant.ID, a.ID)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	if ok {
		iv := &view.ImportView{Title: imp.Title, Version: imp.Version, At: imp.ImportedAt}
		for _, rt := range imp.Routes {
			iv.Routes = append(iv.Routes, view.RouteRow{Method: rt.Method, Path: rt.Path, OperationID: rt.OperationID, Summary: rt.Summary})
		}
		m.Import = iv
	}
	p.renderStatus(w, r, status, view.APIForm(m))
}

func (p *Portal) apiEdit(w http.ResponseWriter, r *http.Request, q *req) {
	p.apiPage(w, r, q, r.PathValue("id"), view.Form{}, blankForm(), http.StatusOK)
}

func (p *Portal) apiUpdate(w http.ResponseWriter, r *http.Request, q *req) {
	id := r.PathValue("id")
	f := readForm(w, r)
	in, ok := apiInput(&f)
	if !ok {
		p.apiPage(w, r, q, id, f, blankForm(), http.StatusUnprocessableEntity)
		return
	}
	a, err := p.cat.UpdateAPI(r.Context(), q.user.Actor(), id, func(cur *catalog.APIInput) error {
		// Only the fields this form shows: settings it does not know stay as they are.
		cur.Name, cur.Slug, cur.BasePath, cur.UpstreamID = in.Name, in.Slug, in.BasePath, in.UpstreamID
		cur.Auth, cur.StripBasePath, cur.TimeoutMS = in.Auth, in.StripBasePath, in.TimeoutMS
		cur.Published = in.Published
		return nil
	})
	if err != nil {
		if errors.Is(err, fault.ErrNotFound) || !applyError(&f, err, apiFields...) {
			p.fail(w, r, q, err)
			return
		}
		p.apiPage(w, r, q, id, f, blankForm(), http.StatusUnprocessableEntity)
		return
	}
	p.redirect(w, r, "/apis/"+a.ID, "Saved.")
}

func (p *Portal) apiDelete(w http.ResponseWriter, r *http.Request, q *req) {
	if err := p.cat.DeleteAPI(r.Context(), q.user.Actor(), r.PathValue("id")); err != nil {
		p.fail(w, r, q, err)
		return
	}
	p.redirect(w, r, "/apis", "API deleted.")
}

func (p *Portal) apiImport(w http.ResponseWriter, r *http.Request, q *req) {
	id := r.PathValue("id")
	f := readForm(w, r)
	doc := []byte(f.Get("document"))
	if file, _, err := r.FormFile("file"); err == nil {
		b, rerr := io.ReadAll(io.LimitReader(file, catalog.MaxOpenAPIBytes+1))
		file.Close()
		if rerr != nil {
			p.internal(w, r, rerr)
			return
		}
		if len(b) > 0 {
			doc = b
		}
	}
	imp, err := p.cat.ImportOpenAPI(r.Context(), q.user.Actor(), id, doc)
	if err != nil {
		if errors.Is(err, fault.ErrNotFound) || !applyError(&f, err, "document") {
			p.fail(w, r, q, err)
			return
		}
		p.apiPage(w, r, q, id, view.Form{}, f, http.StatusUnprocessableEntity)
		return
	}
	p.redirect(w, r, "/apis/"+id, fmt.Sprintf("Imported %s: %d routes.", imp.Title, len(imp.Routes)))
}
