package portal

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tollgate/tollgate/services/accounts"
	"github.com/tollgate/tollgate/services/clientip"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/tenancy"
	"github.com/tollgate/tollgate/web/portal/view"
)

// cookieNames are the portal's cookie names: with the __Host- prefix under
// TLS, which pins a cookie to this host, path / and Secure.
type cookieNames struct {
	session, csrf, sso, flash string
	secure                    bool
}

func newCookieNames(secure bool) cookieNames {
	pre := "tg_"
	if secure {
		pre = "__Host-tg_"
	}
	return cookieNames{session: pre + "session", csrf: pre + "csrf", sso: pre + "sso", flash: pre + "flash", secure: secure}
}

func (p *Portal) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	c := &http.Cookie{
		Name: name, Value: value, Path: "/", HttpOnly: true, Secure: p.cookies.secure,
		SameSite: http.SameSiteLaxMode,
	}
	if maxAge < 0 {
		c.MaxAge = -1
	} else if maxAge > 0 {
		c.MaxAge = int(maxAge.Seconds())
	}
	http.SetCookie(w, c)
}

// role is what a route needs of the signed-in user.
type role int

const (
	roleAny   role = iota // any member, viewers included
	roleWrite             // owner or admin
	roleOwner             // owner
)

func (n role) allows(r string) bool {
	switch n {
	case roleWrite:
		return accounts.CanWrite(r)
	case roleOwner:
		return accounts.CanManageTeam(r)
	}
	return accounts.ValidRole(r)
}

// req is a signed-in request.
type req struct {
	sess   accounts.Session
	user   accounts.User
	tenant tenancy.Tenant
	flash  string
	// pending counts the developers and subscriptions waiting for the
	// tenant (the badge of the approval queue in the navigation).
	pending int
}

func (q *req) chrome(title, active string) view.Chrome {
	return view.Chrome{
		Title: title, Active: active, UserName: q.user.Name, UserEmail: q.user.Email, Role: q.user.Role,
		TenantName: q.tenant.Name, TenantSlug: q.tenant.Slug, CSRF: q.sess.CSRF,
		CanWrite: accounts.CanWrite(q.user.Role), CanManageTeam: accounts.CanManageTeam(q.user.Role),
		Flash: q.flash, Pending: q.pending, EmailUnverified: !q.user.EmailVerified,
	}
}

type handler func(w http.ResponseWriter, r *http.Request, q *req)

func (p *Portal) session(r *http.Request) (accounts.Session, error) {
	c, err := r.Cookie(p.cookies.session)
	if err != nil {
		return accounts.Session{}, fault.ErrUnauthenticated
	}
	return p.opts.Sessions.LookupSession(r.Context(), c.Value)
}

// user wraps a signed-in handler: no session sends GET to the login page and
// refuses other methods with 401; a POST must carry the session's CSRF token
// and come from this origin; a role below need is refused with 403.
func (p *Portal) user(need role, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, err := p.session(r)
		if err != nil {
			if !errors.Is(err, fault.ErrUnauthenticated) {
				p.internal(w, r, err)
				return
			}
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			p.renderStatus(w, r, http.StatusUnauthorized, view.PlainError(http.StatusUnauthorized, "Your session has ended. Please sign in again."))
			return
		}
		t, err := p.opts.Tenants.Get(r.Context(), sess.User.TenantID)
		if err != nil {
			p.internal(w, r, err)
			return
		}
		q := &req{sess: sess, user: sess.User, tenant: t}
		if r.Method != http.MethodGet {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if !p.sameOrigin(r) || !validCSRF(r, sess.CSRF) {
				p.renderStatus(w, r, http.StatusForbidden, view.ErrorPage(q.chrome("Forbidden", ""), http.StatusForbidden,
					"This form has expired or did not come from this site. Go back, reload the page and try again."))
				return
			}
			if !need.allows(sess.User.Role) {
				p.renderStatus(w, r, http.StatusForbidden, view.ErrorPage(q.chrome("Forbidden", ""), http.StatusForbidden,
					"Your role ("+sess.User.Role+") cannot make this change. Ask an owner or admin of your team."))
				return
			}
		} else if fc, err := r.Cookie(p.cookies.flash); err == nil {
			if b, err := base64.RawURLEncoding.DecodeString(fc.Value); err == nil {
				q.flash = string(b)
			}
			p.setCookie(w, p.cookies.flash, "", -1)
		}
		// The badge is a nicety: a failure to count leaves it off.
		if d, s, err := p.devs.PendingCounts(r.Context(), t.ID); err == nil {
			q.pending = d + s
		} else if !errors.Is(err, context.Canceled) {
			p.log.Warn("portal: count pending approvals", "tenant", t.Slug, "err", err)
		}
		h(w, r, q)
	}
}

// redirect answers a successful form post with a redirect and a message for
// the next page.
func (p *Portal) redirect(w http.ResponseWriter, r *http.Request, to, flash string) {
	if flash != "" {
		p.setCookie(w, p.cookies.flash, base64.RawURLEncoding.EncodeToString([]byte(flash)), time.Minute)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func validCSRF(r *http.Request, want string) bool {
	got := r.PostFormValue("csrf_token")
	return want != "" && got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// sameOrigin checks Origin (or Referer) when the browser sends one: a second
// line of defence behind the CSRF token.
func (p *Portal) sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		ref := r.Header.Get("Referer")
		if ref == "" {
			return o == ""
		}
		o = ref
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, p.public.Host) || strings.EqualFold(u.Host, r.Host)
}

// anonToken returns the double-submit CSRF token of a signed-out browser,
// setting its cookie when missing. The token is an HMAC of the cookie's
// random value, so a cookie planted by a sibling subdomain alone is useless.
func (p *Portal) anonToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(p.cookies.csrf); err == nil && len(c.Value) >= 32 {
		return p.mac("csrf", c.Value)
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	p.setCookie(w, p.cookies.csrf, v, 0)
	return p.mac("csrf", v)
}

func (p *Portal) mac(purpose, v string) string {
	m := hmac.New(sha256.New, p.secret)
	m.Write([]byte("tollgate/portal/" + purpose + "\x00" + v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

type anonHandler func(w http.ResponseWriter, r *http.Request, csrf string)

// anon serves a signed-out page with a CSRF token for its forms.
func (p *Portal) anon(h anonHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { h(w, r, p.anonToken(w, r)) }
}

// anonPost checks the double-submit CSRF token of a signed-out form.
func (p *Portal) anonPost(h anonHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		c, err := r.Cookie(p.cookies.csrf)
		if err != nil || !p.sameOrigin(r) || !validCSRF(r, p.mac("csrf", c.Value)) {
			p.renderStatus(w, r, http.StatusForbidden, view.PlainError(http.StatusForbidden,
				"This form has expired or did not come from this site. Go back, reload the page and try again."))
			return
		}
		h(w, r, p.anonToken(w, r))
	}
}

// signIn starts a new session (a new id at every login) and sets its cookie.
func (p *Portal) signIn(ctx context.Context, w http.ResponseWriter, r *http.Request, u accounts.User) error {
	if old, err := r.Cookie(p.cookies.session); err == nil {
		if err := p.opts.Sessions.EndSession(ctx, old.Value); err != nil {
			return err
		}
	}
	s, err := p.opts.Sessions.StartSession(ctx, u)
	if err != nil {
		return err
	}
	p.setCookie(w, p.cookies.session, s.ID, 0)
	// Expired sessions, old throttle records and used tokens are pruned now
	// and then, in the background.
	if p.logins.Add(1)%100 == 1 {
		go func() {
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := p.opts.Sessions.PruneSessions(pctx); err != nil {
				p.log.Warn("portal: prune sessions", "err", err)
			}
		}()
	}
	return nil
}

// clientBucket is the throttling subject of the request's client: its
// address as the trusted proxies tell it (TOLLGATE_TRUSTED_PROXIES), IPv6
// grouped by /64.
func (p *Portal) clientBucket(r *http.Request) string {
	return clientip.Bucket(p.opts.TrustedProxies.From(r))
}

// safeNext keeps a post-login redirect on this site: only a same-origin
// path (with query) is accepted, anything else goes to the dashboard.
// Browsers forgive a lot in a Location header (they drop tabs and new
// lines, read "\" as "/", and take "//host" or "/\host" as another
// site), so the check refuses every character they might reinterpret
// rather than trying to predict them: no control characters, spaces or
// backslashes anywhere, raw or percent-encoded, a single leading "/", no
// scheme or host.
func safeNext(next string) string {
	const home = "/dashboard"
	if next == "" || len(next) > 2000 || next[0] != '/' {
		return home
	}
	bad := func(s string) bool {
		for _, r := range s {
			if r < 0x20 || r == 0x7f || r == '\\' || unicode.IsSpace(r) || r == utf8.RuneError || !unicode.IsPrint(r) {
				return true
			}
		}
		return false
	}
	if bad(next) || strings.HasPrefix(next, "//") {
		return home
	}
	// Decode repeatedly: a double-encoded "%252F" is still a slash to some
	// proxy on the way.
	dec := next
	for range 3 {
		d, err := url.PathUnescape(dec)
		if err != nil {
			return home
		}
		if d == dec {
			break
		}
		dec = d
	}
	if bad(dec) || strings.HasPrefix(dec, "//") || hasDotSegment(dec) {
		return home
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
		return home
	}
	return next
}

// hasDotSegment reports whether the path part of p has a "." or ".."
// segment, which browsers resolve (and "/.//host" resolves to "//host").
func hasDotSegment(p string) bool {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}
