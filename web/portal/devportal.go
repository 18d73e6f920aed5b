package portal

import (
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/web/portal/view"
)

// The developer portal page: whether the tenant's portal is on, how
// developers sign up, its look, and the developers' identity provider. It
// saves through services/settings, like PUT /v1/portal.

// portalFields are the inputs of the portal settings form, named as the
// fields of PUT /v1/portal so that the service's errors land next to them.
var portalFields = []string{"enabled", "signup", "allowed_email_domains", "display_name", "accent_color", "logo_url", "support_email"}

var devOIDCFields = []string{"oidc_issuer", "oidc_client_id", "oidc_client_secret"}

// devPortalForms are the two forms of the page; nil ones are filled from the
// stored settings.
type devPortalForms struct {
	settings, oidc *view.Form
}

// portalForm shows stored portal settings in the form.
func portalForm(pt settings.Portal) view.Form {
	f := blankForm()
	if pt.Enabled {
		f.Values.Set("enabled", "on")
	}
	f.Values.Set("signup", pt.Signup)
	f.Values.Set("allowed_email_domains", strings.Join(pt.AllowedEmailDomains, "\n"))
	f.Values.Set("display_name", pt.DisplayName)
	f.Values.Set("accent_color", pt.AccentColor)
	f.Values.Set("logo_url", pt.LogoURL)
	f.Values.Set("support_email", pt.SupportEmail)
	return f
}

// domainLines reads a textarea of one domain per line, without blank lines.
func domainLines(s string) []string {
	out := []string{}
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func (p *Portal) renderDevPortal(w http.ResponseWriter, r *http.Request, q *req, forms devPortalForms, status int) {
	ctx := r.Context()
	pt, err := p.opts.Settings.GetPortal(ctx, q.tenant.ID)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	domains, err := p.opts.Domains.ListDomains(ctx, q.tenant.ID)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	apis, err := all(func(pg store.Page) ([]catalog.API, string, error) { return p.cat.ListAPIs(ctx, q.tenant.ID, pg) })
	if err != nil {
		p.internal(w, r, err)
		return
	}
	plans, err := all(func(pg store.Page) ([]catalog.Plan, string, error) { return p.cat.ListPlans(ctx, q.tenant.ID, pg) })
	if err != nil {
		p.internal(w, r, err)
		return
	}
	m := view.DevPortalPage{C: q.chrome("Developer portal", "devportal"), URL: p.devPortalURL(q.tenant.Slug),
		Enabled: pt.Enabled, Signup: pt.Signup, OIDCHasSecret: pt.OIDC.HasSecret, OIDCEnabled: pt.OIDC.Enabled(),
		APIs: len(apis), Plans: len(plans)}
	for _, a := range apis {
		if a.Published {
			m.PublishedAPIs++
		}
	}
	for _, pl := range plans {
		if pl.Public {
			m.PublicPlans++
		}
	}
	for _, d := range domains {
		if d.Purpose == settings.PurposePortal {
			m.Domains = append(m.Domains, view.DomainRow{ID: d.ID, Domain: d.Domain, Purpose: d.Purpose, Verified: d.VerifiedAt != nil})
		}
	}
	if forms.settings != nil {
		m.Form = *forms.settings
	} else {
		m.Form = portalForm(pt)
	}
	if forms.oidc != nil {
		m.OIDC = *forms.oidc
	} else {
		m.OIDC = blankForm()
		m.OIDC.Values.Set("oidc_issuer", pt.OIDC.Issuer)
		m.OIDC.Values.Set("oidc_client_id", pt.OIDC.ClientID)
	}
	p.renderStatus(w, r, status, view.DevPortal(m))
}

func (p *Portal) devPortalPage(w http.ResponseWriter, r *http.Request, q *req) {
	p.renderDevPortal(w, r, q, devPortalForms{}, http.StatusOK)
}

// savePortal applies the fields named by only (inputs of the form) to the
// stored settings; an invalid form is shown again with its errors.
func (p *Portal) savePortal(w http.ResponseWriter, r *http.Request, q *req, f view.Form, only []string, flash string) {
	// Blank lines are dropped before validation and the form shows the
	// list as checked, so that "line N" in an error is the line on screen.
	f.Values.Set("allowed_email_domains", strings.Join(domainLines(f.Get("allowed_email_domains")), "\n"))
	set := map[string]bool{}
	for _, n := range only {
		set[n] = true
	}
	_, err := p.opts.Settings.SavePortal(r.Context(), q.user.Actor(), func(pt *settings.Portal) error {
		if set["enabled"] {
			pt.Enabled = f.Get("enabled") == "on"
		}
		if set["signup"] {
			pt.Signup = f.Get("signup")
		}
		if set["allowed_email_domains"] {
			pt.AllowedEmailDomains = domainLines(f.Get("allowed_email_domains"))
		}
		for name, dst := range map[string]*string{"display_name": &pt.DisplayName, "accent_color": &pt.AccentColor,
			"logo_url": &pt.LogoURL, "support_email": &pt.SupportEmail} {
			if set[name] {
				*dst = f.Get(name)
			}
		}
		return nil
	})
	if err != nil {
		if !applyError(&f, err, portalFields...) {
			p.internal(w, r, err)
			return
		}
		p.renderDevPortal(w, r, q, devPortalForms{settings: &f}, http.StatusUnprocessableEntity)
		return
	}
	p.redirect(w, r, "/developer-portal", flash)
}

func (p *Portal) devPortalSave(w http.ResponseWriter, r *http.Request, q *req) {
	f := readForm(w, r)
	msg := "Developer portal saved."
	if f.Get("enabled") == "on" {
		msg += " Developers find it at " + p.devPortalURL(q.tenant.Slug) + "."
	} else {
		msg += " It is off: developers see nothing there."
	}
	// The whole form: a cleared input (or an unchecked box) clears its setting.
	p.savePortal(w, r, q, f, portalFields, msg)
}

// settingsBranding keeps the old branding form of the settings page working:
// its fields (portal_title, portal_color, portal_logo_url, support_email)
// are the portal's display name, accent colour, logo and support address.
// Errors are shown on the developer portal page, where those fields live now.
func (p *Portal) settingsBranding(w http.ResponseWriter, r *http.Request, q *req) {
	old := readForm(w, r)
	pt, err := p.opts.Settings.GetPortal(r.Context(), q.tenant.ID)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	f := portalForm(pt)
	var only []string
	for from, to := range map[string]string{"portal_title": "display_name", "portal_color": "accent_color",
		"portal_logo_url": "logo_url", "support_email": "support_email"} {
		if old.Values.Has(from) {
			f.Values.Set(to, old.Get(from))
			only = append(only, to)
		}
	}
	p.savePortal(w, r, q, f, only, "Branding saved.")
}

func (p *Portal) devPortalOIDC(w http.ResponseWriter, r *http.Request, q *req) {
	f := readForm(w, r)
	err := p.opts.Settings.SaveDeveloperOIDC(r.Context(), q.user.Actor(), settings.OIDC{
		Issuer: f.Get("oidc_issuer"), ClientID: f.Get("oidc_client_id"), ClientSecret: f.Get("oidc_client_secret"),
		AllowHTTP: p.opts.AllowPrivateUpstreams,
	})
	if err != nil {
		if !applyError(&f, err, devOIDCFields...) {
			p.internal(w, r, err)
			return
		}
		p.renderDevPortal(w, r, q, devPortalForms{oidc: &f}, http.StatusUnprocessableEntity)
		return
	}
	msg := "Developer sign-in saved: developers can sign in with your identity provider."
	if strings.TrimSpace(f.Get("oidc_issuer")) == "" && strings.TrimSpace(f.Get("oidc_client_id")) == "" {
		msg = "Developer sign-in with an identity provider is off."
	}
	p.redirect(w, r, "/developer-portal", msg)
}
