package portal

import (
	"errors"
	"net/http"

	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/web/portal/view"
)

// settingsForms are the three forms of the settings page; nil ones are
// filled from the stored settings.
type settingsForms struct {
	domain, branding, sso *view.Form
}

func (p *Portal) renderSettings(w http.ResponseWriter, r *http.Request, q *req, sf settingsForms, status int) {
	ctx := r.Context()
	st, err := settings.Get(ctx, p.db, q.tenant.ID)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	domains, err := settings.ListDomains(ctx, p.db, q.tenant.ID)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	m := view.SettingsPage{C: q.chrome("Settings", "settings"), ProxyURL: p.proxyURL(q.tenant.Slug),
		ProxyDomain: p.opts.ProxyDomain, SSOHasSecret: st.OIDC.HasSecret, RedirectURL: p.absURL("/sso/callback", nil)}
	for _, d := range domains {
		m.Domains = append(m.Domains, view.DomainRow{ID: d.ID, Domain: d.Domain, RecordName: d.VerificationName(),
			Token: d.VerificationToken, Verified: d.VerifiedAt != nil})
	}
	if sf.domain != nil {
		m.DomainForm = *sf.domain
	} else {
		m.DomainForm = blankForm()
	}
	if sf.branding != nil {
		m.Branding = *sf.branding
	} else {
		m.Branding = blankForm()
		m.Branding.Values.Set("portal_title", st.Branding.Title)
		m.Branding.Values.Set("portal_color", st.Branding.Color)
		m.Branding.Values.Set("portal_logo_url", st.Branding.LogoURL)
		m.Branding.Values.Set("support_email", st.Branding.SupportEmail)
	}
	if sf.sso != nil {
		m.SSO = *sf.sso
	} else {
		m.SSO = blankForm()
		m.SSO.Values.Set("oidc_issuer", st.OIDC.Issuer)
		m.SSO.Values.Set("oidc_client_id", st.OIDC.ClientID)
	}
	p.renderStatus(w, r, status, view.Settings(m))
}

func (p *Portal) settingsPage(w http.ResponseWriter, r *http.Request, q *req) {
	p.renderSettings(w, r, q, settingsForms{}, http.StatusOK)
}

func (p *Portal) settingsBranding(w http.ResponseWriter, r *http.Request, q *req) {
	f := readForm(w, r)
	_, err := settings.SaveBranding(r.Context(), p.db, q.user.Actor(), settings.Branding{
		Title: f.Get("portal_title"), Color: f.Get("portal_color"), LogoURL: f.Get("portal_logo_url"), SupportEmail: f.Get("support_email"),
	})
	if err != nil {
		if !applyError(&f, err, "portal_title", "portal_color", "portal_logo_url", "support_email") {
			p.internal(w, r, err)
			return
		}
		p.renderSettings(w, r, q, settingsForms{branding: &f}, http.StatusUnprocessableEntity)
		return
	}
	p.redirect(w, r, "/settings", "Branding saved.")
}

func (p *Portal) settingsSSO(w http.ResponseWriter, r *http.Request, q *req) {
	f := readForm(w, r)
	err := settings.SaveOIDC(r.Context(), p.db, p.secret, q.user.Actor(), settings.OIDC{
		Issuer: f.Get("oidc_issuer"), ClientID: f.Get("oidc_client_id"), ClientSecret: f.Get("oidc_client_secret"),
	})
	if err != nil {
		if !applyError(&f, err, "oidc_issuer", "oidc_client_id", "oidc_client_secret") {
			p.internal(w, r, err)
			return
		}
		p.renderSettings(w, r, q, settingsForms{sso: &f}, http.StatusUnprocessableEntity)
		return
	}
	p.redirect(w, r, "/settings", "Single sign-on saved. Your team signs in with the workspace slug "+q.tenant.Slug+".")
}

func (p *Portal) domainAdd(w http.ResponseWriter, r *http.Request, q *req) {
	f := readForm(w, r)
	d, err := settings.AddDomain(r.Context(), p.db, q.user.Actor(), f.Get("domain"), p.opts.ProxyDomain)
	if err != nil {
		if !applyError(&f, err, "domain") {
			p.internal(w, r, err)
			return
		}
		p.renderSettings(w, r, q, settingsForms{domain: &f}, http.StatusUnprocessableEntity)
		return
	}
	p.redirect(w, r, "/settings", "Domain "+d.Domain+" added. Publish its TXT record to verify it.")
}

func (p *Portal) domainRemove(w http.ResponseWriter, r *http.Request, q *req) {
	if err := settings.RemoveDomain(r.Context(), p.db, q.user.Actor(), r.PathValue("id")); err != nil {
		p.fail(w, r, q, err)
		return
	}
	p.redirect(w, r, "/settings", "Domain removed.")
}

func (p *Portal) domainVerify(w http.ResponseWriter, r *http.Request, q *req) {
	d, err := settings.VerifyDomain(r.Context(), p.db, q.user.Actor(), r.PathValue("id"), p.opts.LookupTXT)
	if err != nil {
		f := blankForm()
		if errors.Is(err, fault.ErrNotFound) || !applyError(&f, err, "domain") {
			p.fail(w, r, q, err)
			return
		}
		p.renderSettings(w, r, q, settingsForms{domain: &f}, http.StatusUnprocessableEntity)
		return
	}
	p.redirect(w, r, "/settings", d.Domain+" is verified.")
}
