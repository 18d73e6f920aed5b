package devportal

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/sso"
	"github.com/tollgate/tollgate/web/devportal/view"
)

// The signed-out pages: sign-up, sign-in and out, address verification,
// password reset, and sign-in with the tenant's identity provider. None of
// them tells whether an address has an account.

func (pg *pages) signupModel(r *http.Request, q *pageReq, f view.Form, invite string) view.SignupPage {
	mode := q.portal.Signup
	if mode == "" {
		mode = settings.SignupOpen
	}
	return view.SignupPage{Chrome: q.chrome(r, "Sign up", ""), Form: f, CSRF: q.csrf, Mode: mode, Invite: invite,
		Domains: q.portal.AllowedEmailDomains, OIDC: q.portal.OIDC.Enabled()}
}

func (pg *pages) signupForm(w http.ResponseWriter, r *http.Request, q *pageReq) {
	if q.session != nil {
		http.Redirect(w, r, "/apps", http.StatusSeeOther)
		return
	}
	f := pageBlankForm()
	if e := r.URL.Query().Get("email"); len(e) <= 254 {
		f.Values.Set("email", e)
	}
	invite := r.URL.Query().Get("invite")
	if len(invite) > 128 {
		invite = ""
	}
	pg.render(w, r, http.StatusOK, view.Signup(pg.signupModel(r, q, f, invite)))
}

func (pg *pages) signup(w http.ResponseWriter, r *http.Request, q *pageReq) {
	f := pageForm(r)
	invite := f.Get("invite")
	in := developers.SignupInput{Name: f.Get("name"), Email: f.Get("email"), Password: f.Get("password"), Invite: invite}
	err := pg.p.opts.Developers.Signup(r.Context(), q.tenant, in, pg.p.clientIP(r))
	if err != nil {
		status := pageApplyError(&f, err, "name", "email", "password")
		if status == 0 {
			pg.internal(w, r, q, err)
			return
		}
		pg.render(w, r, status, view.Signup(pg.signupModel(r, q, f, invite)))
		return
	}
	// The same answer whether or not the address had an account.
	pg.redirect(w, r, "/signup/sent", "")
}

func (pg *pages) signupSent(w http.ResponseWriter, r *http.Request, q *pageReq) {
	text := []string{
		"If the address can be used here, a mail with a confirmation link is on its way. Open it within 24 hours to confirm your address.",
		"Nothing arrived after a few minutes? Look in your spam folder, or sign in and ask for a new link.",
	}
	if q.portal.Signup == settings.SignupApproval {
		text = append(text, "The API provider reviews every new account: we mail you once you are approved.")
	}
	pg.render(w, r, http.StatusOK, view.Message(view.MessagePage{Chrome: q.chrome(r, "Check your inbox", ""),
		Heading: "Check your inbox", Text: text, Href: "/login", Action: "Go to sign in"}))
}

func (pg *pages) loginModel(r *http.Request, q *pageReq, f view.Form) view.LoginPage {
	return view.LoginPage{Chrome: q.chrome(r, "Sign in", ""), Form: f, CSRF: q.csrf, OIDC: q.portal.OIDC.Enabled()}
}

func (pg *pages) loginForm(w http.ResponseWriter, r *http.Request, q *pageReq) {
	next := pageNext(r.URL.Query().Get("next"))
	if q.session != nil {
		http.Redirect(w, r, pageOr(next, "/apps"), http.StatusSeeOther)
		return
	}
	f := pageBlankForm()
	f.Values.Set("next", next)
	pg.render(w, r, http.StatusOK, view.Login(pg.loginModel(r, q, f)))
}

func pageOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (pg *pages) login(w http.ResponseWriter, r *http.Request, q *pageReq) {
	f := pageForm(r)
	f.Values.Set("next", pageNext(f.Get("next")))
	dev, err := pg.p.opts.Developers.Login(r.Context(), q.tenant, f.Get("email"), f.Get("password"), pg.p.clientIP(r))
	if err != nil {
		f.Values.Del("password")
		status := http.StatusUnauthorized
		if errors.Is(err, fault.ErrUnauthenticated) {
			f.Message = "Wrong email or password."
		} else if status = pageApplyError(&f, err); status == 0 {
			pg.internal(w, r, q, err)
			return
		}
		pg.render(w, r, status, view.Login(pg.loginModel(r, q, f)))
		return
	}
	if _, err := pg.p.signIn(w, r, dev); err != nil {
		pg.internal(w, r, q, err)
		return
	}
	pg.redirect(w, r, pageOr(f.Get("next"), "/apps"), "Welcome back, "+dev.Name+".")
}

func (pg *pages) logout(w http.ResponseWriter, r *http.Request, q *pageReq) {
	if err := pg.p.opts.Developers.EndSession(r.Context(), q.session.ID); err != nil {
		pg.internal(w, r, q, err)
		return
	}
	pg.p.setCookie(w, pg.p.cookies.session, "", -1)
	pg.redirect(w, r, "/", "You are signed out.")
}

// verifyForm shows the confirmation button only: mail scanners and link
// previews fetch links, so a GET never consumes the token.
func (pg *pages) verifyForm(w http.ResponseWriter, r *http.Request, q *pageReq) {
	tok := r.URL.Query().Get("token")
	if len(tok) > 128 {
		tok = ""
	}
	pg.render(w, r, http.StatusOK, view.Verify(view.VerifyPage{Chrome: q.chrome(r, "Confirm your address", ""),
		CSRF: q.csrf, Token: tok, Form: pageBlankForm()}))
}

func (pg *pages) verify(w http.ResponseWriter, r *http.Request, q *pageReq) {
	f := pageForm(r)
	tok := f.Get("token")
	dev, err := pg.p.opts.Developers.Verify(r.Context(), q.tenant, tok, pg.p.clientIP(r))
	if err != nil {
		status := pageApplyError(&f, err)
		if status == 0 {
			pg.internal(w, r, q, err)
			return
		}
		if status == http.StatusUnprocessableEntity {
			status = http.StatusBadRequest
		}
		pg.render(w, r, status, view.Verify(view.VerifyPage{Chrome: q.chrome(r, "Confirm your address", ""),
			CSRF: q.csrf, Token: tok, Form: f}))
		return
	}
	msg := "Your email address is confirmed."
	if dev.Status == developers.StatusPending {
		msg += " The API provider still has to approve your account; we mail you when they do."
	}
	if q.session != nil && q.session.Developer.ID == dev.ID {
		pg.redirect(w, r, "/apps", msg)
		return
	}
	pg.redirect(w, r, "/login", msg+" Sign in to continue.")
}

func (pg *pages) resend(w http.ResponseWriter, r *http.Request, q *pageReq) {
	next := pageOr(pageNext(r.PostFormValue("next")), "/apps")
	dev := q.dev()
	if dev.EmailVerified {
		pg.redirect(w, r, next, "Your address is already confirmed.")
		return
	}
	if err := pg.p.opts.Developers.ResendVerification(r.Context(), q.tenant, dev, pg.p.clientIP(r)); err != nil {
		pg.fail(w, r, q, err)
		return
	}
	pg.redirect(w, r, next, "We sent a new confirmation link to "+dev.Email+". It works for 24 hours.")
}

func (pg *pages) forgotForm(w http.ResponseWriter, r *http.Request, q *pageReq) {
	pg.render(w, r, http.StatusOK, view.Forgot(view.ForgotPage{Chrome: q.chrome(r, "Reset your password", ""),
		Form: pageBlankForm(), CSRF: q.csrf}))
}

func (pg *pages) forgot(w http.ResponseWriter, r *http.Request, q *pageReq) {
	f := pageForm(r)
	if err := pg.p.opts.Developers.RequestReset(r.Context(), q.tenant, f.Get("email"), pg.p.clientIP(r)); err != nil {
		status := pageApplyError(&f, err, "email")
		if status == 0 {
			pg.internal(w, r, q, err)
			return
		}
		pg.render(w, r, status, view.Forgot(view.ForgotPage{Chrome: q.chrome(r, "Reset your password", ""), Form: f, CSRF: q.csrf}))
		return
	}
	pg.redirect(w, r, "/login", "If that address has an account, we sent it a link to choose a new password. The link works for an hour.")
}

func (pg *pages) resetForm(w http.ResponseWriter, r *http.Request, q *pageReq) {
	tok := r.URL.Query().Get("token")
	if len(tok) > 128 {
		tok = ""
	}
	pg.render(w, r, http.StatusOK, view.Reset(view.ResetPage{Chrome: q.chrome(r, "Choose a new password", ""),
		Form: pageBlankForm(), CSRF: q.csrf, Token: tok}))
}

func (pg *pages) reset(w http.ResponseWriter, r *http.Request, q *pageReq) {
	f := pageForm(r)
	tok := f.Get("token")
	if _, err := pg.p.opts.Developers.ResetPassword(r.Context(), q.tenant, tok, f.Get("password"), pg.p.clientIP(r)); err != nil {
		status := pageApplyError(&f, err, "password")
		if status == 0 {
			pg.internal(w, r, q, err)
			return
		}
		pg.render(w, r, status, view.Reset(view.ResetPage{Chrome: q.chrome(r, "Choose a new password", ""), Form: f,
			CSRF: q.csrf, Token: tok}))
		return
	}
	// ResetPassword ended every session of the developer, this browser's too.
	pg.p.setCookie(w, pg.p.cookies.session, "", -1)
	pg.redirect(w, r, "/login", "Your password is changed. Sign in with the new one.")
}

// ---- sign-in with the tenant's identity provider ----

// pageSSOState is what the browser carries between /sso/start and the
// callback, in a short-lived cookie signed with the server secret and bound
// to the portal host.
type pageSSOState struct {
	Flow    sso.Flow `json:"f"`
	Expires int64    `json:"e"`
}

const pageSSOFlowTTL = 10 * time.Minute

func (pg *pages) encodeSSO(r *http.Request, st pageSSOState) string {
	b, _ := json.Marshal(st)
	v := base64.RawURLEncoding.EncodeToString(b)
	return v + "." + pg.p.mac("sso", hostOnly(r.Host)+"\x00"+v)
}

func (pg *pages) decodeSSO(r *http.Request, raw string) (pageSSOState, bool) {
	v, sig, ok := strings.Cut(raw, ".")
	if !ok || !equal(sig, pg.p.mac("sso", hostOnly(r.Host)+"\x00"+v)) {
		return pageSSOState{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return pageSSOState{}, false
	}
	var st pageSSOState
	if json.Unmarshal(b, &st) != nil || time.Now().Unix() > st.Expires {
		return pageSSOState{}, false
	}
	return st, true
}

// ssoRedirectURL is the callback the tenant registers at its identity
// provider: /sso/callback on the portal host.
func (pg *pages) ssoRedirectURL(r *http.Request) string { return pg.p.baseURL(r) + "/sso/callback" }

func (pg *pages) provider(r *http.Request, q *pageReq) (*sso.Provider, error) {
	o, ok, err := pg.p.opts.Developers.OIDC(r.Context(), q.tenant.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New("the portal has no identity provider")
	}
	return pg.p.idps.Get(r.Context(), sso.Config{Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret})
}

func (pg *pages) ssoStart(w http.ResponseWriter, r *http.Request, q *pageReq) {
	prov, err := pg.provider(r, q)
	if err != nil {
		pg.p.log.Warn("devportal: sso start", "tenant", q.tenant.Slug, "err", err)
		f := pageBlankForm()
		f.Message = "Signing in with your company account is not available right now. Use your email and password, or try again later."
		pg.render(w, r, http.StatusServiceUnavailable, view.Login(pg.loginModel(r, q, f)))
		return
	}
	st := pageSSOState{Flow: sso.NewFlow(), Expires: time.Now().Add(pageSSOFlowTTL).Unix()}
	pg.p.setCookie(w, pg.p.cookies.sso, pg.encodeSSO(r, st), pageSSOFlowTTL)
	http.Redirect(w, r, prov.AuthCodeURL(pg.ssoRedirectURL(r), st.Flow), http.StatusSeeOther)
}

func (pg *pages) ssoCallback(w http.ResponseWriter, r *http.Request, q *pageReq) {
	refuse := func(msg string, err error) {
		pg.p.log.Warn("devportal: sso callback refused", "tenant", q.tenant.Slug, "reason", msg, "err", err)
		pg.errorPage(w, r, q, http.StatusBadRequest, "Sign-in did not work", msg)
	}
	c, err := r.Cookie(pg.p.cookies.sso)
	if err != nil {
		refuse("The sign-in attempt expired or was started in another browser. Please start again.", err)
		return
	}
	pg.p.setCookie(w, pg.p.cookies.sso, "", -1)
	st, ok := pg.decodeSSO(r, c.Value)
	if !ok {
		refuse("The sign-in attempt expired or was tampered with. Please start again.", nil)
		return
	}
	prov, err := pg.provider(r, q)
	if err != nil {
		refuse("Signing in with your company account is not available right now.", err)
		return
	}
	claims, err := prov.Finish(r.Context(), pg.ssoRedirectURL(r), st.Flow, r.URL.Query())
	switch {
	case errors.Is(err, sso.ErrState), errors.Is(err, sso.ErrNonce):
		refuse("The identity provider's answer did not match this sign-in attempt. Please start again.", err)
		return
	case errors.Is(err, sso.ErrDenied):
		refuse("Your identity provider did not sign you in.", err)
		return
	case err != nil:
		refuse("Your identity provider's answer could not be verified.", err)
		return
	}
	dev, err := pg.p.opts.Developers.OIDCLogin(r.Context(), q.tenant, developers.Identity{Issuer: claims.Issuer,
		Subject: claims.Subject, Email: claims.Email, EmailVerified: claims.EmailVerified, Name: claims.Name})
	var de *fault.DeniedError
	if errors.As(err, &de) {
		refuse(capitalize(de.Message)+".", err)
		return
	}
	if err != nil {
		pg.internal(w, r, q, fmt.Errorf("oidc login: %w", err))
		return
	}
	if _, err := pg.p.signIn(w, r, dev); err != nil {
		pg.internal(w, r, q, err)
		return
	}
	pg.redirect(w, r, "/apps", "Welcome, "+dev.Name+".")
}
