package portal

import (
	"errors"
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/services/accounts"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/web/portal/view"
)

// settingsForms are the forms of the settings page; nil ones are filled
// from the stored settings. (The developer portal's branding has its own
// page, /developer-portal.)
type settingsForms struct {
	domain, sso *view.Form
}

func (p *Portal) renderSettings(w http.ResponseWriter, r *http.Request, q *req, sf settingsForms, status int) {
	ctx := r.Context()
	st, err := p.opts.Settings.Get(ctx, q.tenant.ID)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	domains, err := p.opts.Domains.ListDomains(ctx, q.tenant.ID)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	m := view.SettingsPage{C: p.gatewayChrome(r, q, "Settings", "settings"), ProxyURL: p.proxyURL(q.tenant.Slug),
		ProxyDomain: p.opts.ProxyDomain, DevPortalURL: p.devPortalURL(q.tenant.Slug),
		SSOHasSecret: st.OIDC.HasSecret, RedirectURL: p.absURL("/sso/callback", nil)}
	for _, d := range domains {
		m.Domains = append(m.Domains, view.DomainRow{ID: d.ID, Domain: d.Domain, Purpose: d.Purpose, RecordName: d.VerificationName(),
			Token: d.VerificationToken, Verified: d.VerifiedAt != nil})
	}
	if sf.domain != nil {
		m.DomainForm = *sf.domain
	} else {
		m.DomainForm = blankForm()
		m.DomainForm.Values.Set("purpose", settings.PurposeGateway)
	}
	if sf.sso != nil {
		m.SSO = *sf.sso
	} else {
		domains, err := p.opts.Team.SSODomains(ctx, q.tenant.ID)
		if err != nil {
			p.internal(w, r, err)
			return
		}
		m.SSO = blankForm()
		m.SSO.Values.Set("oidc_issuer", st.OIDC.Issuer)
		m.SSO.Values.Set("oidc_client_id", st.OIDC.ClientID)
		m.SSO.Values.Set(accounts.SSODomainsField, strings.Join(domains, ", "))
	}
	p.renderStatus(w, r, status, view.Settings(m))
}

func (p *Portal) settingsPage(w http.ResponseWriter, r *http.Request, q *req) {
	p.renderSettings(w, r, q, settingsForms{}, http.StatusOK)
}

func (p *Portal) settingsSSO(w http.ResponseWriter, r *http.Request, q *req) {
	f := readForm(w, r)
	domains := accounts.SplitDomains(f.Get(accounts.SSODomainsField))
	// The domains are checked first so that a bad list saves nothing.
	_, err := accounts.NormalizeSSODomains(domains)
	if err == nil {
		err = p.opts.Settings.SaveOIDC(r.Context(), q.user.Actor(), settings.OIDC{
			Issuer: f.Get("oidc_issuer"), ClientID: f.Get("oidc_client_id"), ClientSecret: f.Get("oidc_client_secret"),
			AllowHTTP: p.opts.AllowPrivateUpstreams,
		})
	}
	if err == nil {
		_, err = p.opts.Team.SaveSSODomains(r.Context(), q.user.Actor(), domains)
	}
	if err != nil {
		if !applyError(&f, err, "oidc_issuer", "oidc_client_id", "oidc_client_secret", accounts.SSODomainsField) {
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
	purpose := f.Get("purpose")
	if purpose == "" {
		purpose = settings.PurposeGateway
	}
	d, err := p.opts.Domains.AddDomain(r.Context(), q.user.Actor(), f.Get("domain"), purpose,
		p.opts.ProxyDomain, p.devPortalDomain())
	if err != nil {
		if !applyError(&f, err, "domain", "purpose") {
			p.internal(w, r, err)
			return
		}
		p.renderSettings(w, r, q, settingsForms{domain: &f}, http.StatusUnprocessableEntity)
		return
	}
	what := "your APIs"
	if d.Purpose == settings.PurposePortal {
		what = "your developer portal"
	}
	p.redirect(w, r, "/settings", "Domain "+d.Domain+" added for "+what+". Publish its TXT record to verify it.")
}

func (p *Portal) domainRemove(w http.ResponseWriter, r *http.Request, q *req) {
	if err := p.opts.Domains.RemoveDomain(r.Context(), q.user.Actor(), r.PathValue("id")); err != nil {
		p.fail(w, r, q, err)
		return
	}
	p.redirect(w, r, "/settings", "Domain removed.")
}

func (p *Portal) domainVerify(w http.ResponseWriter, r *http.Request, q *req) {
	d, err := p.opts.Domains.VerifyDomain(r.Context(), q.user.Actor(), r.PathValue("id"))
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
