package portal

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/web/portal/view"
)

func (p *Portal) upstreamsList(w http.ResponseWriter, r *http.Request, q *req) {
	ups, err := all(func(pg store.Page) ([]catalog.Upstream, string, error) {
		return p.cat.ListUpstreams(r.Context(), q.tenant.ID, pg)
	})
	if err != nil {
		p.internal(w, r, err)
		return
	}
	m := view.UpstreamsPage{C: p.gatewayChrome(r, q, "Upstreams", "upstreams")}
	live := p.liveHealth(r.Context(), q.tenant.ID)
	now := time.Now()
	for _, u := range ups {
		row := upstreamRow(u)
		if live != nil {
			applyLive(&row, live, u, now)
			m.Live = true
		}
		m.Upstreams = append(m.Upstreams, row)
	}
	p.render(w, r, view.Upstreams(m))
}

// upstreamRow is an upstream's card: its targets and configured check.
func upstreamRow(u catalog.Upstream) view.UpstreamRow {
	row := view.UpstreamRow{ID: u.ID, Name: u.Name, Algorithm: strings.ReplaceAll(u.Algorithm, "_", " ")}
	state := "unchecked"
	row.HealthCheck = "No active health check: every target is taken as healthy."
	if hc := u.HealthCheck; hc != nil {
		state = "checked"
		row.HealthCheck = fmt.Sprintf("Health check GET %s every %s, healthy after %d, unhealthy after %d.",
			hc.Path, msText(hc.IntervalMS), hc.HealthyThreshold, hc.UnhealthyThreshold)
	}
	for _, t := range u.Targets {
		weight := 1
		if t.Weight != nil {
			weight = *t.Weight
		}
		row.Targets = append(row.Targets, view.TargetRow{URL: t.URL, Weight: weight, State: state})
	}
	return row
}

func msText(ms int) string {
	if ms%1000 == 0 {
		return strconv.Itoa(ms/1000) + "s"
	}
	return strconv.Itoa(ms) + "ms"
}

func upstreamForm(u catalog.Upstream) view.Form {
	f := blankForm()
	f.Values.Set("name", u.Name)
	f.Values.Set("algorithm", u.Algorithm)
	var lines []string
	for _, t := range u.Targets {
		line := t.URL
		if t.Weight != nil && *t.Weight != 1 {
			line += " " + strconv.Itoa(*t.Weight)
		}
		lines = append(lines, line)
	}
	f.Values.Set("targets", strings.Join(lines, "\n"))
	if hc := u.HealthCheck; hc != nil {
		f.Values.Set("hc_enabled", "on")
		f.Values.Set("hc_path", hc.Path)
		f.Values.Set("hc_interval", strconv.Itoa(hc.IntervalMS))
		f.Values.Set("hc_timeout", strconv.Itoa(hc.TimeoutMS))
		f.Values.Set("hc_healthy", strconv.Itoa(hc.HealthyThreshold))
		f.Values.Set("hc_unhealthy", strconv.Itoa(hc.UnhealthyThreshold))
		if hc.ExpectedStatus != 0 {
			f.Values.Set("hc_status", strconv.Itoa(hc.ExpectedStatus))
		}
	}
	return f
}

// upstreamInput reads the upstream form: targets are "url [weight]" lines.
func upstreamInput(f *view.Form) (catalog.UpstreamInput, bool) {
	in := catalog.UpstreamInput{Name: f.Get("name"), Algorithm: f.Get("algorithm")}
	ok := true
	var lineErrs []string
	for i, line := range strings.Split(strings.ReplaceAll(f.Get("targets"), "\r\n", "\n"), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		t := catalog.Target{URL: fields[0]}
		if len(fields) > 2 {
			lineErrs = append(lineErrs, fmt.Sprintf("line %d: write the URL, a space and a weight", i+1))
			continue
		}
		if len(fields) == 2 {
			wgt, err := strconv.Atoi(fields[1])
			if err != nil {
				lineErrs = append(lineErrs, fmt.Sprintf("line %d: the weight must be a whole number", i+1))
				continue
			}
			t.Weight = &wgt
		}
		in.Targets = append(in.Targets, t)
	}
	if len(lineErrs) > 0 {
		f.Errors["targets"] = strings.Join(lineErrs, "; ")
		ok = false
	}
	if f.Get("hc_enabled") == "on" {
		hc := &catalog.HealthCheck{Path: strings.TrimSpace(f.Get("hc_path"))}
		for name, dst := range map[string]*int{"hc_interval": &hc.IntervalMS, "hc_timeout": &hc.TimeoutMS,
			"hc_healthy": &hc.HealthyThreshold, "hc_unhealthy": &hc.UnhealthyThreshold, "hc_status": &hc.ExpectedStatus} {
			n, good := intField(f, name)
			ok = ok && good
			*dst = int(n)
		}
		in.HealthCheck = hc
	}
	return in, ok
}

var upstreamFields = []string{"name", "algorithm", "targets", "hc_path", "hc_interval", "hc_timeout", "hc_healthy", "hc_unhealthy", "hc_status"}

func (p *Portal) upstreamNew(w http.ResponseWriter, r *http.Request, q *req) {
	f := upstreamForm(catalog.Upstream{Algorithm: "round_robin"})
	p.render(w, r, view.UpstreamForm(view.UpstreamFormPage{C: q.chrome("New upstream", "upstreams"), Form: f}))
}

func (p *Portal) upstreamCreate(w http.ResponseWriter, r *http.Request, q *req) {
	f := readForm(w, r)
	in, ok := upstreamInput(&f)
	var err error
	var u catalog.Upstream
	if ok {
		u, err = p.cat.CreateUpstream(r.Context(), q.user.Actor(), in)
	}
	if !ok || err != nil {
		if err != nil && !applyError(&f, err, upstreamFields...) {
			p.internal(w, r, err)
			return
		}
		p.renderStatus(w, r, http.StatusUnprocessableEntity, view.UpstreamForm(view.UpstreamFormPage{C: q.chrome("New upstream", "upstreams"), Form: f}))
		return
	}
	p.redirect(w, r, "/upstreams", "Upstream "+u.Name+" created. Next: create an API that forwards to it.")
}

func (p *Portal) upstreamEdit(w http.ResponseWriter, r *http.Request, q *req) {
	u, err := p.cat.GetUpstream(r.Context(), q.tenant.ID, r.PathValue("id"))
	if err != nil {
		p.fail(w, r, q, err)
		return
	}
	page := view.UpstreamFormPage{C: q.chrome(u.Name, "upstreams"), ID: u.ID, Form: upstreamForm(u)}
	if live := p.liveHealth(r.Context(), q.tenant.ID); live != nil {
		row := upstreamRow(u)
		applyLive(&row, live, u, time.Now())
		page.Live = &row
	}
	p.render(w, r, view.UpstreamForm(page))
}

func (p *Portal) upstreamUpdate(w http.ResponseWriter, r *http.Request, q *req) {
	id := r.PathValue("id")
	f := readForm(w, r)
	in, ok := upstreamInput(&f)
	var err error
	if ok {
		_, err = p.cat.UpdateUpstream(r.Context(), q.user.Actor(), id, func(cur *catalog.UpstreamInput) error {
			// Only the fields this form shows: settings it does not know stay as they are.
			cur.Name, cur.Algorithm, cur.Targets, cur.HealthCheck = in.Name, in.Algorithm, in.Targets, in.HealthCheck
			return nil
		})
	}
	if errors.Is(err, fault.ErrNotFound) {
		p.notFound(w, r, q)
		return
	}
	if !ok || err != nil {
		if err != nil && !applyError(&f, err, upstreamFields...) {
			p.internal(w, r, err)
			return
		}
		p.renderStatus(w, r, http.StatusUnprocessableEntity, view.UpstreamForm(view.UpstreamFormPage{C: q.chrome(f.Get("name"), "upstreams"), ID: id, Form: f}))
		return
	}
	p.redirect(w, r, "/upstreams", "Saved.")
}

func (p *Portal) upstreamDelete(w http.ResponseWriter, r *http.Request, q *req) {
	id := r.PathValue("id")
	err := p.cat.DeleteUpstream(r.Context(), q.user.Actor(), id)
	var ce *fault.ConflictError
	if errors.As(err, &ce) {
		p.redirect(w, r, "/upstreams/"+id, ce.Message)
		return
	}
	if err != nil {
		p.fail(w, r, q, err)
		return
	}
	p.redirect(w, r, "/upstreams", "Upstream deleted.")
}
