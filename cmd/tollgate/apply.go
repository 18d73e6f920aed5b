package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/mgmtapi/v1client"
)

// `tollgate apply -f FILE` makes a tenant's upstreams, APIs (with their
// OpenAPI documents), plans and portal settings match FILE (declarative.go),
// through /v1 only. It reads the file and the tenant, validates everything
// (the file's entries, its references, its documents) and computes the plan
// before it changes anything; then it applies the plan in dependency order
// (upstreams, APIs, documents, plans, the portal; with --prune, deletions:
// plans, APIs, upstreams) and stops at the first refusal, saying what it
// had applied. Objects that already match are not written at all, so
// applying the same file twice changes nothing the second time. Each
// update and deletion carries the ETag the plan was made from (If-Match):
// an object changed by someone else in between is refused, not
// overwritten.

const defaultControlURL = "http://localhost:8080"

// tenantClientFlags adds -url and -token (TOLLGATE_URL, TOLLGATE_TOKEN).
func tenantClientFlags(fs *flag.FlagSet, getenv func(string) string) (base, token *string) {
	def := getenv("TOLLGATE_URL")
	if def == "" {
		def = defaultControlURL
	}
	base = fs.String("url", def, "the control plane's URL (TOLLGATE_URL)")
	token = fs.String("token", getenv("TOLLGATE_TOKEN"), "a tenant admin token (TOLLGATE_TOKEN)")
	return base, token
}

func newTenantClient(base, token string) (*v1client.ClientWithResponses, error) {
	if token == "" {
		return nil, errors.New("a tenant admin token is required: set TOLLGATE_TOKEN or pass -token")
	}
	return v1client.New(v1client.Options{BaseURL: base, Token: token})
}

func cmdApply(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("apply", flag.ContinueOnError)
	file := fs.String("f", "", "the file (YAML or JSON) or directory of files to apply")
	dryRun := fs.Bool("dry-run", false, "print the plan and change nothing")
	prune := fs.Bool("prune", false, "delete the upstreams, APIs and plans the file does not mention")
	base, token := tenantClientFlags(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" || fs.NArg() > 0 {
		return errors.New("usage: tollgate apply -f FILE|DIR [-dry-run] [-prune] [-url URL] [-token TOKEN]")
	}
	cfg, err := loadTenantConfig(*file)
	if err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	c, err := newTenantClient(*base, *token)
	if err != nil {
		return err
	}
	lv, err := readLive(ctx, c)
	if err != nil {
		return err
	}
	p, err := planApply(ctx, c, cfg, lv, *prune)
	if err != nil {
		return err
	}
	p.print(stdout)
	if *dryRun {
		fmt.Fprintln(stdout, "Dry run: nothing was changed.")
		return nil
	}
	return p.execute(ctx, stdout)
}

// live is the tenant's configuration as /v1 answers it.
type live struct {
	upstreams  []v1client.Upstream
	apis       []v1client.API
	plans      []v1client.Plan
	portal     v1client.Portal
	portalETag string
	names      *names
}

// listAll reads every page of a list.
func listAll[T any](page func(cursor *string) ([]T, *string, error)) ([]T, error) {
	var out []T
	var cursor *string
	for {
		items, next, err := page(cursor)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
		if next == nil || *next == "" {
			return out, nil
		}
		cursor = next
	}
}

const pageSize = 200

func readLive(ctx context.Context, c *v1client.ClientWithResponses) (*live, error) {
	lv := &live{names: newNames()}
	var err error
	lv.upstreams, err = listAll(func(cur *string) ([]v1client.Upstream, *string, error) {
		r, err := v1client.Ok(c.ListUpstreamsWithResponse(ctx, &v1client.ListUpstreamsParams{Limit: ptr(pageSize), Cursor: cur}))
		if err != nil {
			return nil, nil, err
		}
		return r.JSON200.Items, r.JSON200.NextCursor, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read upstreams: %w", err)
	}
	lv.apis, err = listAll(func(cur *string) ([]v1client.API, *string, error) {
		r, err := v1client.Ok(c.ListApisWithResponse(ctx, &v1client.ListApisParams{Limit: ptr(pageSize), Cursor: cur}))
		if err != nil {
			return nil, nil, err
		}
		return r.JSON200.Items, r.JSON200.NextCursor, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read APIs: %w", err)
	}
	lv.plans, err = listAll(func(cur *string) ([]v1client.Plan, *string, error) {
		r, err := v1client.Ok(c.ListPlansWithResponse(ctx, &v1client.ListPlansParams{Limit: ptr(pageSize), Cursor: cur}))
		if err != nil {
			return nil, nil, err
		}
		return r.JSON200.Items, r.JSON200.NextCursor, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read plans: %w", err)
	}
	pr, err := v1client.Ok(c.GetPortalWithResponse(ctx))
	if err != nil {
		return nil, fmt.Errorf("read the portal settings: %w", err)
	}
	lv.portal, lv.portalETag = *pr.JSON200, v1client.ETag(pr.HTTPResponse)
	for _, u := range lv.upstreams {
		lv.names.addUpstream(u.Id, u.Name)
	}
	for _, a := range lv.apis {
		lv.names.addAPI(a.Id, a.Slug)
	}
	for _, p := range lv.plans {
		lv.names.addPlan(p.Id, p.Name)
	}
	return lv, nil
}

// liveDocument is the stored OpenAPI document of an API, nil when it has
// none.
func liveDocument(ctx context.Context, c *v1client.ClientWithResponses, apiID string) (any, error) {
	r, err := v1client.Ok(c.ExportApiDocumentWithResponse(ctx, apiID))
	var e *v1client.Error
	if errors.As(err, &e) && e.StatusCode == 404 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		return nil, fmt.Errorf("decode document: %w", err)
	}
	return v, nil
}

// Operations of a plan.
const (
	opCreate    = "create"
	opUpdate    = "update"
	opDelete    = "delete"
	opUnchanged = "unchanged"
)

// action is one object's part of the plan.
type action struct {
	op, kind, name string
	changes        []fieldChange
	// more counts the changes not listed (of a document).
	more int
	// hidden: a step of another object's change (the JWT plans of an API
	// that needed plans made after it), neither printed nor counted.
	hidden bool
	// done is what the log says once run succeeded.
	done string
	run  func(ctx context.Context) error
	// src is where the object is in the file: a field the control plane
	// refuses is named there.
	src *source
}

func (a *action) title() string {
	if a.name == "" {
		return a.kind
	}
	return a.kind + " " + a.name
}

type applyPlan struct {
	actions []*action
}

func (p *applyPlan) add(a *action) { p.actions = append(p.actions, a) }

// planner computes a plan: the file against the tenant.
type planner struct {
	ctx   context.Context
	c     *v1client.ClientWithResponses
	cfg   *tenantConfig
	lv    *live
	prune bool
	errs  configErrors
	plan  applyPlan
	// deferred are the APIs whose JWT names plans that did not exist when
	// they were written: their JWT is set again after the plans.
	deferred []*apiSpec
}

// byName indexes live objects by name, keeping every object of a name.
func byName[T any](items []T, name func(T) string) map[string][]T {
	out := map[string][]T{}
	for _, it := range items {
		out[name(it)] = append(out[name(it)], it)
	}
	return out
}

// single is the live object the file's object at src matches (nil: none);
// ok is false when the tenant has several of that name, which cannot be
// told apart.
func single[T any](pl *planner, src source, field, kind, name string, found []T, id func(T) string) (match *T, ok bool) {
	switch len(found) {
	case 0:
		return nil, true
	case 1:
		return &found[0], true
	}
	ids := make([]string, len(found))
	for i, f := range found {
		ids[i] = id(f)
	}
	pl.errs.add(src, field, "the tenant has %d %ss named %q (%s): rename or delete all but one first",
		len(found), kind, name, strings.Join(ids, ", "))
	return nil, false
}

// fetchFunc reads an object again, for its ETag: its spec (filled) and
// ETag.
type fetchFunc func() (spec any, etag string, err error)

// updateFunc writes the given fields of the format, with If-Match etag.
type updateFunc func(ctx context.Context, etag string, fields []string) error

// compare plans an object of the file that the tenant has: unchanged, or
// an update of the fields that differ. An object that differs is read
// again for its ETag, which the update sends as If-Match.
func (pl *planner) compare(src *source, kind, name string, have, want any, fetch fetchFunc, update updateFunc) error {
	changes := diffFields(have, want)
	if len(changes) == 0 {
		pl.plan.add(&action{op: opUnchanged, kind: kind, name: name})
		return nil
	}
	have, etag, err := fetch()
	if err != nil {
		return fmt.Errorf("read %s %s: %w", kind, name, err)
	}
	if changes = diffFields(have, want); len(changes) == 0 {
		pl.plan.add(&action{op: opUnchanged, kind: kind, name: name})
		return nil
	}
	done := "updated " + kind
	if name != "" {
		done += " " + name
	}
	fields := topFields(changes)
	pl.plan.add(&action{op: opUpdate, kind: kind, name: name, changes: changes, done: done, src: src,
		run: func(ctx context.Context) error { return update(ctx, etag, fields) }})
	return nil
}

func planApply(ctx context.Context, c *v1client.ClientWithResponses, cfg *tenantConfig, lv *live, prune bool) (*applyPlan, error) {
	pl := &planner{ctx: ctx, c: c, cfg: cfg, lv: lv, prune: prune}
	names := lv.names
	liveUps := byName(lv.upstreams, func(u v1client.Upstream) string { return u.Name })
	liveAPIs := byName(lv.apis, func(a v1client.API) string { return a.Slug })
	livePlans := byName(lv.plans, func(p v1client.Plan) string { return p.Name })
	pl.checkReferences(liveUps, liveAPIs, livePlans)
	docs, err := pl.documents(liveAPIs)
	if err != nil {
		return nil, err
	}
	if err := pl.errs.err(); err != nil {
		return nil, err
	}

	for _, u := range cfg.Upstreams {
		want := u.filled()
		match, ok := single(pl, u.src, "name", "upstream", want.Name, liveUps[want.Name], func(x v1client.Upstream) string { return x.Id })
		if !ok {
			continue
		}
		if match == nil {
			pl.plan.add(&action{op: opCreate, kind: "upstream", name: want.Name, done: "created upstream " + want.Name, src: &u.src,
				run: func(ctx context.Context) error {
					r, err := v1client.Ok(c.CreateUpstreamWithResponse(ctx, nil, u.request()))
					if err != nil {
						return err
					}
					names.addUpstream(r.JSON201.Id, want.Name)
					return nil
				}})
			continue
		}
		id := match.Id
		if err := pl.compare(&u.src, "upstream", want.Name, upstreamSpecOf(*match), want,
			func() (any, string, error) {
				r, err := v1client.Ok(c.GetUpstreamWithResponse(ctx, id))
				if err != nil {
					return nil, "", err
				}
				return upstreamSpecOf(*r.JSON200), v1client.ETag(r.HTTPResponse), nil
			},
			func(ctx context.Context, etag string, fields []string) error {
				body, err := patchBody(u.request(), fields)
				if err != nil {
					return err
				}
				_, err = v1client.Ok(c.UpdateUpstreamWithBodyWithResponse(ctx, id,
					&v1client.UpdateUpstreamParams{IfMatch: v1client.IfMatch(etag)}, "application/json", bytes.NewReader(body)))
				return err
			}); err != nil {
			return nil, err
		}
	}

	for _, a := range cfg.APIs {
		want := a.filled()
		match, ok := single(pl, a.src, "slug", "API", want.Slug, liveAPIs[want.Slug], func(x v1client.API) string { return x.Id })
		if !ok {
			continue
		}
		if match == nil {
			pl.plan.add(&action{op: opCreate, kind: "api", name: want.Slug, done: "created api " + want.Slug, src: &a.src,
				run: func(ctx context.Context) error {
					req, pending := a.request(names)
					r, err := v1client.Ok(c.CreateApiWithResponse(ctx, nil, req))
					if err != nil {
						return err
					}
					names.addAPI(r.JSON201.Id, want.Slug)
					if pending {
						pl.deferred = append(pl.deferred, a)
					}
					return nil
				}})
			continue
		}
		id := match.Id
		if err := pl.compare(&a.src, "api", want.Slug, apiSpecOf(*match, names), want,
			func() (any, string, error) {
				r, err := v1client.Ok(c.GetApiWithResponse(ctx, id))
				if err != nil {
					return nil, "", err
				}
				return apiSpecOf(*r.JSON200, names), v1client.ETag(r.HTTPResponse), nil
			},
			func(ctx context.Context, etag string, fields []string) error {
				req, pending := a.request(names)
				body, err := patchBody(req, fields)
				if err != nil {
					return err
				}
				_, err = v1client.Ok(c.UpdateApiWithBodyWithResponse(ctx, id,
					&v1client.UpdateApiParams{IfMatch: v1client.IfMatch(etag)}, "application/json", bytes.NewReader(body)))
				if err == nil && pending {
					pl.deferred = append(pl.deferred, a)
				}
				return err
			}); err != nil {
			return nil, err
		}
	}

	for _, d := range docs {
		pl.plan.add(d)
	}

	for _, p := range cfg.Plans {
		want := p.filled()
		match, ok := single(pl, p.src, "name", "plan", want.Name, livePlans[want.Name], func(x v1client.Plan) string { return x.Id })
		if !ok {
			continue
		}
		if match == nil {
			pl.plan.add(&action{op: opCreate, kind: "plan", name: want.Name, done: "created plan " + want.Name, src: &p.src,
				run: func(ctx context.Context) error {
					r, err := v1client.Ok(c.CreatePlanWithResponse(ctx, nil, p.request(names)))
					if err != nil {
						return err
					}
					names.addPlan(r.JSON201.Id, want.Name)
					return nil
				}})
			continue
		}
		id := match.Id
		if err := pl.compare(&p.src, "plan", want.Name, planSpecOf(*match, names), want,
			func() (any, string, error) {
				r, err := v1client.Ok(c.GetPlanWithResponse(ctx, id))
				if err != nil {
					return nil, "", err
				}
				return planSpecOf(*r.JSON200, names), v1client.ETag(r.HTTPResponse), nil
			},
			func(ctx context.Context, etag string, fields []string) error {
				body, err := patchBody(p.request(names), fields)
				if err != nil {
					return err
				}
				_, err = v1client.Ok(c.UpdatePlanWithBodyWithResponse(ctx, id,
					&v1client.UpdatePlanParams{IfMatch: v1client.IfMatch(etag)}, "application/json", bytes.NewReader(body)))
				return err
			}); err != nil {
			return nil, err
		}
	}

	pl.plan.add(&action{hidden: true, kind: "jwt", run: func(ctx context.Context) error {
		for _, a := range pl.deferred {
			req, pending := a.request(names)
			if pending {
				return fmt.Errorf("api %s: the plans its JWT names do not exist", a.Slug)
			}
			body, err := patchBody(req, []string{"jwt"})
			if err != nil {
				return err
			}
			if _, err := v1client.Ok(c.UpdateApiWithBodyWithResponse(ctx, names.apiID[a.Slug], nil, "application/json",
				bytes.NewReader(body))); err != nil {
				return fmt.Errorf("api %s: set the plans its JWT names: %w", a.Slug, err)
			}
		}
		return nil
	}})

	if p := cfg.Portal; p != nil {
		if err := pl.compare(&p.src, "portal", "", portalSpecOf(lv.portal), p.filled(),
			func() (any, string, error) { return portalSpecOf(lv.portal), lv.portalETag, nil },
			func(ctx context.Context, etag string, fields []string) error {
				body, err := patchBody(p.request(), fields)
				if err != nil {
					return err
				}
				_, err = v1client.Ok(c.UpdatePortalWithBodyWithResponse(ctx,
					&v1client.UpdatePortalParams{IfMatch: v1client.IfMatch(etag)}, "application/json", bytes.NewReader(body)))
				return err
			}); err != nil {
			return nil, err
		}
	}

	if prune {
		if err := pl.deletions(); err != nil {
			return nil, err
		}
	}
	if err := pl.errs.err(); err != nil {
		return nil, err
	}
	return &pl.plan, nil
}

// checkReferences resolves the file's references (an API's upstream, a
// plan's APIs, a JWT's plans) against the file and the tenant; with
// --prune, only the file's objects remain, so a reference must be to one
// of them.
func (pl *planner) checkReferences(liveUps map[string][]v1client.Upstream, liveAPIs map[string][]v1client.API,
	livePlans map[string][]v1client.Plan) {
	inFile := func(names []string, n string) bool {
		for _, x := range names {
			if x == n {
				return true
			}
		}
		return false
	}
	var ups, apis, plans []string
	for _, u := range pl.cfg.Upstreams {
		ups = append(ups, strings.TrimSpace(u.Name))
	}
	for _, a := range pl.cfg.APIs {
		apis = append(apis, a.Slug)
	}
	for _, p := range pl.cfg.Plans {
		plans = append(plans, strings.TrimSpace(p.Name))
	}
	resolve := func(src source, field, kind, name string, file []string, liveCount int) {
		switch {
		case inFile(file, name):
		case liveCount == 0:
			pl.errs.add(src, field, "no %s %q in the file or the tenant", kind, name)
		case pl.prune:
			pl.errs.add(src, field, "%s %q is not in the file: -prune would delete it", kind, name)
		case liveCount > 1:
			pl.errs.add(src, field, "the tenant has %d %ss named %q: rename or delete all but one first", liveCount, kind, name)
		}
	}
	for _, a := range pl.cfg.APIs {
		resolve(a.src, "upstream", "upstream", a.Upstream, ups, len(liveUps[a.Upstream]))
		if j := a.JWT; j != nil {
			if j.Plan != "" {
				resolve(a.src, "jwt.plan", "plan", j.Plan, plans, len(livePlans[j.Plan]))
			}
			for i, s := range j.Subjects {
				if s.Plan != "" {
					resolve(a.src, fmt.Sprintf("jwt.subjects[%d].plan", i), "plan", s.Plan, plans, len(livePlans[s.Plan]))
				}
			}
		}
	}
	for _, p := range pl.cfg.Plans {
		for i, s := range p.APIs {
			resolve(p.src, fmt.Sprintf("apis[%d]", i), "API", s, apis, len(liveAPIs[s]))
		}
	}
}

// documents plans the OpenAPI documents of the file's APIs: each is
// validated as the control plane will (catalog.ParseOpenAPI) and compared
// with the stored one, as parsed JSON.
func (pl *planner) documents(liveAPIs map[string][]v1client.API) ([]*action, error) {
	var out []*action
	for _, a := range pl.cfg.APIs {
		if a.OpenAPI == nil {
			continue
		}
		_, normalized, err := catalog.ParseOpenAPI(pl.ctx, a.OpenAPI.text)
		var ve *fault.ValidationError
		if errors.As(err, &ve) {
			for _, fe := range ve.Errors {
				pl.errs.add(a.src, "openapi", "%s", fe.Message)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("api %s: openapi: %w", a.Slug, err)
		}
		var want any
		if err := json.Unmarshal(normalized, &want); err != nil {
			return nil, fmt.Errorf("api %s: openapi: %w", a.Slug, err)
		}
		var have any
		if found := liveAPIs[a.Slug]; len(found) == 1 {
			if have, err = liveDocument(pl.ctx, pl.c, found[0].Id); err != nil {
				return nil, fmt.Errorf("read the OpenAPI document of api %s: %w", a.Slug, err)
			}
		}
		act := &action{kind: "openapi document of api", name: a.Slug, src: &a.src}
		switch {
		case have == nil:
			act.op = opCreate
		case reflect.DeepEqual(have, want):
			act.op = opUnchanged
		default:
			act.op = opUpdate
			act.changes = diffFields(have, want)
			if len(act.changes) > 10 {
				act.changes, act.more = act.changes[:10], len(act.changes)-10
			}
		}
		if act.op != opUnchanged {
			slug := a.Slug
			act.done = "imported the OpenAPI document of api " + slug
			act.run = func(ctx context.Context) error {
				_, err := v1client.Ok(pl.c.ImportApiDocumentWithBodyWithResponse(ctx, pl.lv.names.apiID[slug], nil,
					"application/json", bytes.NewReader(normalized)))
				return err
			}
		}
		out = append(out, act)
	}
	return out, nil
}

// deletions plans -prune: the tenant's plans, APIs and upstreams that the
// file does not mention, in that order (what uses an object goes first).
func (pl *planner) deletions() error {
	c, ctx := pl.c, pl.ctx
	inFile := map[string]bool{}
	for _, p := range pl.cfg.Plans {
		inFile["plan:"+strings.TrimSpace(p.Name)] = true
	}
	for _, a := range pl.cfg.APIs {
		inFile["api:"+a.Slug] = true
	}
	for _, u := range pl.cfg.Upstreams {
		inFile["upstream:"+strings.TrimSpace(u.Name)] = true
	}
	del := func(kind, name string, get func() (string, error), remove func(ctx context.Context, etag string) error) error {
		etag, err := get()
		if err != nil {
			return fmt.Errorf("read %s %s: %w", kind, name, err)
		}
		pl.plan.add(&action{op: opDelete, kind: kind, name: name, done: "deleted " + kind + " " + name,
			run: func(ctx context.Context) error { return remove(ctx, etag) }})
		return nil
	}
	for _, p := range pl.lv.plans {
		if inFile["plan:"+p.Name] {
			continue
		}
		id := p.Id
		if err := del("plan", p.Name, func() (string, error) {
			r, err := v1client.Ok(c.GetPlanWithResponse(ctx, id))
			if err != nil {
				return "", err
			}
			return v1client.ETag(r.HTTPResponse), nil
		}, func(ctx context.Context, etag string) error {
			_, err := v1client.Ok(c.DeletePlanWithResponse(ctx, id, &v1client.DeletePlanParams{IfMatch: v1client.IfMatch(etag)}))
			return err
		}); err != nil {
			return err
		}
	}
	for _, a := range pl.lv.apis {
		if inFile["api:"+a.Slug] {
			continue
		}
		id := a.Id
		if err := del("api", a.Slug, func() (string, error) {
			r, err := v1client.Ok(c.GetApiWithResponse(ctx, id))
			if err != nil {
				return "", err
			}
			return v1client.ETag(r.HTTPResponse), nil
		}, func(ctx context.Context, etag string) error {
			_, err := v1client.Ok(c.DeleteApiWithResponse(ctx, id, &v1client.DeleteApiParams{IfMatch: v1client.IfMatch(etag)}))
			return err
		}); err != nil {
			return err
		}
	}
	for _, u := range pl.lv.upstreams {
		if inFile["upstream:"+u.Name] {
			continue
		}
		id := u.Id
		if err := del("upstream", u.Name, func() (string, error) {
			r, err := v1client.Ok(c.GetUpstreamWithResponse(ctx, id))
			if err != nil {
				return "", err
			}
			return v1client.ETag(r.HTTPResponse), nil
		}, func(ctx context.Context, etag string) error {
			_, err := v1client.Ok(c.DeleteUpstreamWithResponse(ctx, id, &v1client.DeleteUpstreamParams{IfMatch: v1client.IfMatch(etag)}))
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// counts are the plan's changes by operation.
func (p *applyPlan) counts() map[string]int {
	n := map[string]int{}
	for _, a := range p.actions {
		if !a.hidden {
			n[a.op]++
		}
	}
	return n
}

// print writes the plan: every object with what apply does to it, and the
// fields an update changes.
func (p *applyPlan) print(w io.Writer) {
	for _, a := range p.actions {
		if a.hidden {
			continue
		}
		fmt.Fprintf(w, "%-9s %s\n", a.op, a.title())
		for _, ch := range a.changes {
			from, to := ch.from, ch.to
			if from == "" {
				from = zeroLike(ch.path, to)
			}
			if to == "" {
				to = zeroLike(ch.path, from)
			}
			fmt.Fprintf(w, "            %s: %s -> %s\n", ch.path, from, to)
		}
		if a.more > 0 {
			fmt.Fprintf(w, "            ... and %d more changes\n", a.more)
		}
	}
	n := p.counts()
	fmt.Fprintf(w, "Plan: %d to create, %d to update, %d to delete, %d unchanged.\n",
		n[opCreate], n[opUpdate], n[opDelete], n[opUnchanged])
}

// execute runs the plan's changes in order and stops at the first that
// fails, saying what was applied and what was not.
func (p *applyPlan) execute(ctx context.Context, w io.Writer) error {
	var todo []*action
	for _, a := range p.actions {
		if a.run != nil {
			todo = append(todo, a)
		}
	}
	applied := 0
	visible := 0
	for _, a := range todo {
		if !a.hidden {
			visible++
		}
	}
	if visible == 0 {
		fmt.Fprintln(w, "No changes: the tenant matches the file.")
		return nil
	}
	for i, a := range todo {
		if err := a.run(ctx); err != nil {
			var rest []string
			for _, b := range todo[i:] {
				if !b.hidden {
					rest = append(rest, b.op+" "+b.title())
				}
			}
			fmt.Fprintf(w, "Stopped: %d of %d changes applied; not applied: %s.\n", applied, visible, strings.Join(rest, ", "))
			what := a.op + " " + a.title()
			if a.hidden {
				what = "set JWT plans"
			}
			var e *v1client.Error
			if errors.As(err, &e) && a.src != nil && e.Problem.Errors != nil && len(*e.Problem.Errors) > 0 {
				var lines []string
				for _, fe := range *e.Problem.Errors {
					f := formatField(fe.Field)
					if a.kind == "openapi document of api" {
						f = "openapi"
					}
					lines = append(lines, configError{at: a.src.at(f), field: a.src.field(f), msg: fe.Message}.String())
				}
				return fmt.Errorf("apply stopped at %s: the control plane refused it (%d %s):\n%s", what, e.StatusCode, e.Code(),
					strings.Join(lines, "\n"))
			}
			return fmt.Errorf("apply stopped at %s: %w", what, err)
		}
		if !a.hidden {
			applied++
			fmt.Fprintln(w, a.done)
		}
	}
	fmt.Fprintf(w, "Applied %d changes.\n", applied)
	return nil
}

// zeroLike is how a field the format leaves out (its zero value) prints,
// given the JSON value on the other side of a change: false, 0 or "" for
// a field, (none) for a list element or an object.
func zeroLike(path, other string) string {
	switch {
	case strings.HasSuffix(path, "]"):
		return "(none)"
	case other == "true" || other == "false":
		return "false"
	case strings.HasPrefix(other, `"`):
		return `""`
	case other != "" && (other[0] == '-' || other[0] >= '0' && other[0] <= '9'):
		return "0"
	}
	return "(none)"
}

// formatField is the format's name of a field the control plane names in
// its request terms (ids where the format has names).
func formatField(f string) string {
	for _, r := range [][2]string{{"upstream_id", "upstream"}, {"api_ids", "apis"}, {"plan_id", "plan"}} {
		if f == r[0] || strings.HasPrefix(f, r[0]+"[") || strings.HasPrefix(f, r[0]+".") {
			return r[1] + f[len(r[0]):]
		}
		f = strings.ReplaceAll(f, "."+r[0], "."+r[1])
	}
	return f
}
