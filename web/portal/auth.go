package portal

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/tollgate/tollgate/services/accounts"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/sso"
	"github.com/tollgate/tollgate/web/portal/view"
)

func (p *Portal) signupPage(w http.ResponseWriter, r *http.Request, csrf string) {
	p.render(w, r, view.Signup(view.SignupPage{Form: blankForm(), CSRF: csrf, ProxyDomain: p.opts.ProxyDomain}))
}

func (p *Portal) signup(w http.ResponseWriter, r *http.Request, csrf string) {
	f := readForm(w, r)
	_, u, err := p.opts.Accounts.Signup(r.Context(), accounts.SignupInput{
		Company: f.Get("company"), Slug: strings.TrimSpace(f.Get("slug")), Name: f.Get("name"),
		Email: f.Get("email"), Password: f.Get("password"), Client: p.clientBucket(r),
	})
	if err != nil {
		if refuseBusyPage(p, w, r, err, func(msg string) view.SignupPage {
			f.Message = msg
			return view.SignupPage{Form: f, CSRF: csrf, ProxyDomain: p.opts.ProxyDomain}
		}, view.Signup) {
			return
		}
		if !applyError(&f, err, "company", "slug", "name", "email", "password") {
			p.internal(w, r, err)
			return
		}
		p.renderStatus(w, r, http.StatusUnprocessableEntity, view.Signup(view.SignupPage{Form: f, CSRF: csrf, ProxyDomain: p.opts.ProxyDomain}))
		return
	}
	// The owner may start at once; the banner of every page asks to
	// confirm the address until the link is used.
	if err := p.mailVerification(r, u); err != nil {
		p.internal(w, r, err)
		return
	}
	if err := p.signIn(r.Context(), w, r, u); err != nil {
		p.internal(w, r, err)
		return
	}
	p.redirect(w, r, "/dashboard", "Welcome to Tollgate! We sent a confirmation link to "+u.Email+
		". Start by adding an upstream: the backend your API runs on.")
}

// mailVerification mails u a fresh confirmation link.
func (p *Portal) mailVerification(r *http.Request, u accounts.User) error {
	tok, err := p.opts.Accounts.NewVerification(r.Context(), u)
	if err != nil {
		return err
	}
	link := p.absURL("/verify", url.Values{"token": {tok}})
	body := fmt.Sprintf("Hello %s,\n\nPlease confirm that this is your address by opening this link "+
		"(it works for %d hours, once):\n\n%s\n\nIf you did not create a Tollgate account, ignore this email.\n",
		u.Name, int(accounts.VerifyTTL.Hours()), link)
	return p.sendMail(r.Context(), u.Email, "Confirm your Tollgate email address", body)
}

// verify uses a confirmation link.
func (p *Portal) verify(w http.ResponseWriter, r *http.Request) {
	u, err := p.opts.Accounts.VerifyEmail(r.Context(), r.URL.Query().Get("token"), p.clientBucket(r))
	var te *fault.ThrottledError
	switch {
	case errors.Is(err, fault.ErrNotFound):
		p.renderStatus(w, r, http.StatusNotFound, view.PlainError(http.StatusNotFound,
			"This confirmation link is unknown, used or expired. Sign in to ask for a new one."))
		return
	case errors.As(err, &te):
		p.tooMany(w, r, te)
		return
	case err != nil:
		p.internal(w, r, err)
		return
	}
	if s, err := p.session(r); err == nil && s.User.ID == u.ID {
		p.redirect(w, r, "/dashboard", "Thank you: "+u.Email+" is confirmed.")
		return
	}
	http.Redirect(w, r, "/login?verified=1", http.StatusSeeOther)
}

// resendVerification mails a signed-in, unverified user a new link.
func (p *Portal) resendVerification(w http.ResponseWriter, r *http.Request, q *req) {
	err := p.mailVerification(r, q.user)
	var te *fault.ThrottledError
	switch {
	case errors.Is(err, accounts.ErrAlreadyVerified):
		p.redirect(w, r, "/dashboard", "Your address is already confirmed.")
	case errors.As(err, &te):
		p.redirect(w, r, "/dashboard", "We sent several links already; please use the newest one or try again later.")
	case err != nil:
		p.internal(w, r, err)
	default:
		p.redirect(w, r, "/dashboard", "We sent a new confirmation link to "+q.user.Email+".")
	}
}

// tooMany answers a throttled signed-out request.
func (p *Portal) tooMany(w http.ResponseWriter, r *http.Request, te *fault.ThrottledError) {
	setRetryAfter(w, te.RetryAfter)
	p.renderStatus(w, r, http.StatusTooManyRequests, view.PlainError(http.StatusTooManyRequests,
		"Too many attempts. Please try again in "+waitText(te.RetryAfter)+"."))
}

// refuseBusy answers a throttled attempt (429) or a full hashing queue
// (503) with the form's page and a message, and reports whether it did.
func refuseBusyPage[M any](p *Portal, w http.ResponseWriter, r *http.Request, err error, model func(msg string) M,
	page func(M) templ.Component) bool {
	var te *fault.ThrottledError
	switch {
	case errors.Is(err, accounts.ErrBusy):
		setRetryAfter(w, time.Second)
		p.renderStatus(w, r, http.StatusServiceUnavailable, page(model("We are very busy right now. Please try again in a moment.")))
		return true
	case errors.As(err, &te):
		setRetryAfter(w, te.RetryAfter)
		p.renderStatus(w, r, http.StatusTooManyRequests, page(model("Too many attempts. Please try again in "+waitText(te.RetryAfter)+".")))
		return true
	}
	return false
}

func setRetryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
}

// waitText says how long to wait, in whole minutes (or "a minute").
func waitText(d time.Duration) string {
	m := int((d + time.Minute - 1) / time.Minute)
	if m <= 1 {
		return "a minute"
	}
	if m >= 120 {
		return strconv.Itoa(m/60) + " hours"
	}
	return strconv.Itoa(m) + " minutes"
}

func (p *Portal) loginModel(f view.Form, csrf string) view.LoginPage {
	return view.LoginPage{Form: f, CSRF: csrf, SSO: p.opts.DefaultOIDC != nil, SlugSSO: blankForm()}
}

func (p *Portal) loginPage(w http.ResponseWriter, r *http.Request, csrf string) {
	f := blankForm()
	f.Values.Set("next", r.URL.Query().Get("next"))
	m := p.loginModel(f, csrf)
	switch {
	case r.URL.Query().Get("reset") == "1":
		m.Notice = "Your password was changed. Sign in with the new one."
	case r.URL.Query().Get("verified") == "1":
		m.Notice = "Thank you: your email address is confirmed. Sign in to continue."
	}
	p.render(w, r, view.Login(m))
}

func (p *Portal) login(w http.ResponseWriter, r *http.Request, csrf string) {
	f := readForm(w, r)
	u, err := p.opts.Accounts.Login(r.Context(), f.Get("email"), f.Get("password"), p.clientBucket(r))
	var te *fault.ThrottledError
	switch {
	case errors.Is(err, accounts.ErrBusy):
		f.Message = "We are very busy right now. Please try again in a moment."
		setRetryAfter(w, time.Second)
		p.renderStatus(w, r, http.StatusServiceUnavailable, view.Login(p.loginModel(f, csrf)))
		return
	case errors.As(err, &te):
		f.Message = "There were too many failed sign-in attempts; try again in " + waitText(te.RetryAfter) +
			", or reset your password."
		setRetryAfter(w, te.RetryAfter)
		p.renderStatus(w, r, http.StatusTooManyRequests, view.Login(p.loginModel(f, csrf)))
		return
	case errors.Is(err, accounts.ErrBadCredentials):
		f.Message = "Wrong email or password."
		p.renderStatus(w, r, http.StatusUnauthorized, view.Login(p.loginModel(f, csrf)))
		return
	case err != nil:
		p.internal(w, r, err)
		return
	}
	if err := p.signIn(r.Context(), w, r, u); err != nil {
		p.internal(w, r, err)
		return
	}
	http.Redirect(w, r, safeNext(f.Get("next")), http.StatusSeeOther)
}

func (p *Portal) logout(w http.ResponseWriter, r *http.Request, q *req) {
	if err := p.opts.Sessions.EndSession(r.Context(), q.sess.ID); err != nil {
		p.internal(w, r, err)
		return
	}
	p.setCookie(w, p.cookies.session, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (p *Portal) forgotPage(w http.ResponseWriter, r *http.Request, csrf string) {
	p.render(w, r, view.Forgot(view.ForgotPage{Form: blankForm(), CSRF: csrf}))
}

func (p *Portal) forgot(w http.ResponseWriter, r *http.Request, csrf string) {
	f := readForm(w, r)
	if strings.TrimSpace(f.Get("email")) == "" {
		f.Errors["email"] = "is required"
		p.renderStatus(w, r, http.StatusUnprocessableEntity, view.Forgot(view.ForgotPage{Form: f, CSRF: csrf}))
		return
	}
	u, tok, ok, err := p.opts.Accounts.RequestReset(r.Context(), f.Get("email"), p.clientBucket(r))
	if err != nil {
		if refuseBusyPage(p, w, r, err, func(msg string) view.ForgotPage {
			f.Message = msg
			return view.ForgotPage{Form: f, CSRF: csrf}
		}, view.Forgot) {
			return
		}
		p.internal(w, r, err)
		return
	}
	if ok {
		link := p.absURL("/reset", url.Values{"token": {tok}})
		body := fmt.Sprintf("Hello %s,\n\nSomeone (hopefully you) asked to reset your Tollgate password.\n"+
			"Choose a new one here (the link works for one hour, once):\n\n%s\n\n"+
			"If you did not ask for this, ignore this email: your password stays as it is.\n", u.Name, link)
		if err := p.sendMail(r.Context(), u.Email, "Reset your Tollgate password", body); err != nil {
			p.internal(w, r, err)
			return
		}
	}
	// The same answer whether or not the account exists.
	p.render(w, r, view.Forgot(view.ForgotPage{Form: f, CSRF: csrf, Sent: true}))
}

func (p *Portal) resetPage(w http.ResponseWriter, r *http.Request, csrf string) {
	tok := r.URL.Query().Get("token")
	ok, err := p.opts.Accounts.ValidResetToken(r.Context(), tok)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	p.render(w, r, view.Reset(view.ResetPage{Form: blankForm(), CSRF: csrf, Token: tok, Valid: ok}))
}

func (p *Portal) reset(w http.ResponseWriter, r *http.Request, csrf string) {
	f := readForm(w, r)
	tok := f.Get("token")
	_, err := p.opts.Accounts.ResetPassword(r.Context(), tok, f.Get("password"))
	if refuseBusyPage(p, w, r, err, func(msg string) view.ResetPage {
		f.Message = msg
		return view.ResetPage{Form: f, CSRF: csrf, Token: tok, Valid: true}
	}, view.Reset) {
		return
	}
	switch {
	case errors.Is(err, fault.ErrNotFound):
		p.renderStatus(w, r, http.StatusNotFound, view.Reset(view.ResetPage{Form: f, CSRF: csrf, Token: tok}))
		return
	case err != nil:
		if !applyError(&f, err, "password") {
			p.internal(w, r, err)
			return
		}
		p.renderStatus(w, r, http.StatusUnprocessableEntity, view.Reset(view.ResetPage{Form: f, CSRF: csrf, Token: tok, Valid: true}))
		return
	}
	http.Redirect(w, r, "/login?reset=1", http.StatusSeeOther)
}

func (p *Portal) inviteModel(r *http.Request, f view.Form, csrf, tok string) (view.InvitePage, error) {
	m := view.InvitePage{Form: f, CSRF: csrf, Token: tok}
	inv, err := p.opts.Accounts.LookupInvite(r.Context(), tok)
	if errors.Is(err, fault.ErrNotFound) {
		return m, nil
	}
	if err != nil {
		return m, err
	}
	t, err := p.opts.Tenants.Get(r.Context(), inv.TenantID)
	if err != nil {
		return m, err
	}
	m.Valid, m.Email, m.Role, m.TenantName = true, inv.Email, inv.Role, t.Name
	return m, nil
}

func (p *Portal) invitePage(w http.ResponseWriter, r *http.Request, csrf string) {
	m, err := p.inviteModel(r, blankForm(), csrf, r.URL.Query().Get("token"))
	if err != nil {
		p.internal(w, r, err)
		return
	}
	status := http.StatusOK
	if !m.Valid {
		status = http.StatusNotFound
	}
	p.renderStatus(w, r, status, view.Invite(m))
}

func (p *Portal) acceptInvite(w http.ResponseWriter, r *http.Request, csrf string) {
	f := readForm(w, r)
	tok := f.Get("token")
	u, err := p.opts.Accounts.AcceptInvite(r.Context(), tok, f.Get("name"), f.Get("password"))
	if err != nil {
		m, merr := p.inviteModel(r, f, csrf, tok)
		if merr != nil {
			p.internal(w, r, merr)
			return
		}
		if refuseBusyPage(p, w, r, err, func(msg string) view.InvitePage { m.Form.Message = msg; return m }, view.Invite) {
			return
		}
		if errors.Is(err, fault.ErrNotFound) {
			p.renderStatus(w, r, http.StatusNotFound, view.Invite(m))
			return
		}
		if !applyError(&m.Form, err, "name", "password") {
			p.internal(w, r, err)
			return
		}
		p.renderStatus(w, r, http.StatusUnprocessableEntity, view.Invite(m))
		return
	}
	if err := p.signIn(r.Context(), w, r, u); err != nil {
		p.internal(w, r, err)
		return
	}
	p.redirect(w, r, "/dashboard", "Welcome to the team!")
}

// ssoState is what the browser carries between /sso/start and the callback,
// in a cookie signed with the server secret.
type ssoState struct {
	Flow     sso.Flow `json:"f"`
	TenantID string   `json:"t,omitempty"`
	Expires  int64    `json:"e"`
}

const ssoFlowTTL = 10 * time.Minute

func (p *Portal) encodeSSO(st ssoState) string {
	b, _ := json.Marshal(st)
	v := base64.RawURLEncoding.EncodeToString(b)
	return v + "." + p.mac("sso", v)
}

func (p *Portal) decodeSSO(raw string) (ssoState, bool) {
	v, sig, ok := strings.Cut(raw, ".")
	if !ok || !hmacEqual(sig, p.mac("sso", v)) {
		return ssoState{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return ssoState{}, false
	}
	var st ssoState
	if json.Unmarshal(b, &st) != nil || time.Now().Unix() > st.Expires {
		return ssoState{}, false
	}
	return st, true
}

// provider returns the IdP of a flow: the tenant's own or the platform default.
func (p *Portal) provider(r *http.Request, tenantID string) (*sso.Provider, error) {
	if tenantID == "" {
		if p.opts.DefaultOIDC == nil {
			return nil, errors.New("no platform identity provider is configured")
		}
		return p.platformIdP.Get(r.Context(), *p.opts.DefaultOIDC)
	}
	o, ok, err := p.opts.Settings.TenantOIDC(r.Context(), tenantID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New("this workspace has no identity provider")
	}
	return p.idps.Get(r.Context(), sso.Config{Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret})
}

func (p *Portal) ssoStart(w http.ResponseWriter, r *http.Request, csrf string) {
	f := readForm(w, r)
	st := ssoState{Flow: sso.NewFlow(), Expires: time.Now().Add(ssoFlowTTL).Unix()}
	fail := func(msg string) {
		m := p.loginModel(blankForm(), csrf)
		m.SlugSSO = f
		m.SlugSSO.Errors["workspace"] = msg
		p.renderStatus(w, r, http.StatusBadRequest, view.Login(m))
	}
	if slug := strings.TrimSpace(f.Get("workspace")); slug != "" {
		t, err := p.opts.Tenants.GetBySlug(r.Context(), slug)
		if errors.Is(err, fault.ErrNotFound) {
			fail("No workspace with this slug uses single sign-on.")
			return
		}
		if err != nil {
			p.internal(w, r, err)
			return
		}
		st.TenantID = t.ID
	} else if f.Values.Has("workspace") {
		fail("Enter your workspace slug.")
		return
	}
	prov, err := p.provider(r, st.TenantID)
	if err != nil {
		p.log.Warn("portal: sso start", "tenant", st.TenantID, "err", err)
		fail("Single sign-on is not available for this workspace.")
		return
	}
	p.setCookie(w, p.cookies.sso, p.encodeSSO(st), ssoFlowTTL)
	http.Redirect(w, r, prov.AuthCodeURL(p.absURL("/sso/callback", nil), st.Flow), http.StatusSeeOther)
}

func (p *Portal) ssoCallback(w http.ResponseWriter, r *http.Request) {
	refuse := func(msg string, err error) {
		p.log.Warn("portal: sso callback refused", "reason", msg, "err", err)
		p.renderStatus(w, r, http.StatusBadRequest, view.PlainError(http.StatusBadRequest, msg))
	}
	c, err := r.Cookie(p.cookies.sso)
	if err != nil {
		refuse("The single sign-on attempt expired or was started in another browser. Please start again.", err)
		return
	}
	p.setCookie(w, p.cookies.sso, "", -1)
	st, ok := p.decodeSSO(c.Value)
	if !ok {
		refuse("The single sign-on attempt expired or was tampered with. Please start again.", nil)
		return
	}
	prov, err := p.provider(r, st.TenantID)
	if err != nil {
		refuse("Single sign-on is not available for this workspace.", err)
		return
	}
	claims, err := prov.Finish(r.Context(), p.absURL("/sso/callback", nil), st.Flow, r.URL.Query())
	switch {
	case errors.Is(err, sso.ErrState), errors.Is(err, sso.ErrNonce):
		refuse("The single sign-on response did not match this sign-in attempt. Please start again.", err)
		return
	case errors.Is(err, sso.ErrDenied):
		refuse("Your identity provider did not sign you in.", err)
		return
	case err != nil:
		refuse("Your identity provider's answer could not be verified.", err)
		return
	}
	u, err := p.opts.Accounts.SSOLogin(r.Context(), accounts.Identity{
		Issuer: claims.Issuer, Subject: claims.Subject, Email: claims.Email,
		EmailVerified: claims.EmailVerified, Name: claims.Name, HostedDomain: claims.HostedDomain,
	}, st.TenantID)
	if errors.Is(err, accounts.ErrNoAccount) {
		refuse("There is no Tollgate account for "+claims.Email+" in this workspace. Ask your team's owner to invite you.", err)
		return
	}
	if err != nil {
		p.internal(w, r, err)
		return
	}
	if err := p.signIn(r.Context(), w, r, u); err != nil {
		p.internal(w, r, err)
		return
	}
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

func hmacEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
