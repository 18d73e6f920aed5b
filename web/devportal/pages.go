package devportal

// The HTML pages of the developer portal: server-rendered with templ
// (package view), working without JavaScript except the try-it console and
// the copy buttons (web/static/tryit.js). This file holds the route table,
// the wrappers that load the session and check CSRF, the flash message, the
// per-tenant theme stylesheet and the error pages; pages_*.go hold the
// handlers by area.
//
// Every state-changing form is a POST with a CSRF token: signed-out forms
// (sign-up, sign-in, verification, reset, OIDC start) carry the
// double-submit token of p.anonToken, signed-in ones the session's token.
// A successful POST redirects (303) with a flash message, except where it
// shows a new key: the key is rendered straight into the POST's response and
// never stored in a cookie or anywhere else.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a-h/templ"

	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/tenancy"
	"github.com/tollgate/tollgate/web/devportal/docs"
	"github.com/tollgate/tollgate/web/devportal/view"
)

// pageMaxForm bounds a posted form.
const pageMaxForm = 64 << 10

// pageDefaultAccent is the accent colour of a portal that set none.
const pageDefaultAccent = "#4f46e5"

// pages serves the HTML pages; it holds what the pages cache between
// requests (built references, catalogue summaries).
type pages struct {
	p *Portal
	// docs caches built references and summaries by document hash.
	docs *docs.Cache
	// summaries caches each published API's document summary for the
	// catalogue for a short while, so that a catalogue view does not load
	// every document (API pages always load theirs).
	summaries *pageSummaryCache
}

// pageRoutes mounts the HTML pages.
func (p *Portal) pageRoutes(m *http.ServeMux) {
	pg := &pages{p: p, docs: docs.NewCache(0), summaries: &pageSummaryCache{ttl: pageSummaryTTL}}
	m.HandleFunc("GET /theme.css", pg.theme)

	m.HandleFunc("GET /{$}", pg.open(pg.home))
	m.HandleFunc("GET /apis", pg.open(pg.catalog))
	m.HandleFunc("GET /apis/{ref}", pg.open(pg.apiPage))
	m.HandleFunc("POST /apis/{ref}", pg.member(pg.apiPageWithKey))

	m.HandleFunc("GET /signup", pg.anon(pg.signupForm))
	m.HandleFunc("POST /signup", pg.anon(pg.signup))
	m.HandleFunc("GET /signup/sent", pg.anon(pg.signupSent))
	m.HandleFunc("GET /login", pg.anon(pg.loginForm))
	m.HandleFunc("POST /login", pg.anon(pg.login))
	m.HandleFunc("POST /logout", pg.member(pg.logout))
	m.HandleFunc("GET /verify", pg.anon(pg.verifyForm))
	m.HandleFunc("POST /verify", pg.anon(pg.verify))
	m.HandleFunc("POST /verify/resend", pg.member(pg.resend))
	m.HandleFunc("GET /forgot", pg.anon(pg.forgotForm))
	m.HandleFunc("POST /forgot", pg.anon(pg.forgot))
	m.HandleFunc("GET /reset", pg.anon(pg.resetForm))
	m.HandleFunc("POST /reset", pg.anon(pg.reset))
	m.HandleFunc("POST /sso/start", pg.anon(pg.ssoStart))
	m.HandleFunc("GET /sso/callback", pg.anon(pg.ssoCallback))

	m.HandleFunc("GET /apps", pg.member(pg.apps))
	m.HandleFunc("POST /apps", pg.member(pg.createApp))
	m.HandleFunc("GET /apps/{app}", pg.member(pg.app))
	m.HandleFunc("POST /apps/{app}/delete", pg.member(pg.deleteApp))
	m.HandleFunc("POST /apps/{app}/subscriptions", pg.member(pg.subscribe))
	m.HandleFunc("POST /apps/{app}/subscriptions/{sub}/cancel", pg.member(pg.cancelSubscription))
	m.HandleFunc("POST /apps/{app}/subscriptions/{sub}/keys", pg.member(pg.newKey))
	m.HandleFunc("POST /apps/{app}/keys/{key}/rotate", pg.member(pg.rotateKey))
	m.HandleFunc("POST /apps/{app}/keys/{key}/revoke", pg.member(pg.revokeKey))

	m.HandleFunc("GET /usage", pg.member(pg.usage))
	m.HandleFunc("GET /billing/{sub}", pg.member(pg.billingPage))

	// Everything else is the portal's 404 page (the JSON API mounts its
	// own fallbacks under /api).
	m.HandleFunc("/", pg.open(func(w http.ResponseWriter, r *http.Request, q *pageReq) {
		pg.notFound(w, r, q)
	}))
}

// pageReq is what the wrappers load for a page handler.
type pageReq struct {
	tenant  tenancy.Tenant
	portal  settings.Portal
	session *developers.Session
	// csrf is the token forms of the page carry: the session's for
	// signed-in forms, the signed-out token for signed-out forms (pg.anon).
	csrf  string
	flash string
}

// dev is the signed-in developer (zero when signed out).
func (q *pageReq) dev() developers.Developer {
	if q.session == nil {
		return developers.Developer{}
	}
	return q.session.Developer
}

// chrome is the layout's model for a page.
func (q *pageReq) chrome(r *http.Request, title, active string) view.Chrome {
	c := view.Chrome{Brand: pageBrand(q.tenant, q.portal), Title: title, Active: active, Flash: q.flash, Path: r.URL.Path}
	if q.session != nil {
		d := q.session.Developer
		c.SignedIn, c.DevName, c.DevEmail, c.CSRF = true, d.Name, d.Email, q.session.CSRF
		c.Verified, c.Pending = d.EmailVerified, d.Status == developers.StatusPending
	}
	return c
}

func pageBrand(t tenancy.Tenant, ps settings.Portal) view.Brand {
	name := ps.DisplayName
	if name == "" {
		name = t.Name
	}
	return view.Brand{Name: name, LogoURL: ps.LogoURL, SupportEmail: ps.SupportEmail,
		ThemeURL: "/theme.css?v=" + pageThemeVersion(ps.AccentColor)}
}

type pageHandler func(w http.ResponseWriter, r *http.Request, q *pageReq)

// load reads the portal settings, the optional session and the flash
// message of a request.
func (pg *pages) load(w http.ResponseWriter, r *http.Request) (*pageReq, bool) {
	q := &pageReq{tenant: tenantOf(r)}
	ps, err := pg.p.portalSettings(r)
	if err != nil {
		pg.internal(w, r, q, fmt.Errorf("portal settings: %w", err))
		return nil, false
	}
	q.portal = ps
	if s, err := pg.p.cookieSession(r); err == nil {
		q.session = &s
	} else if !errors.Is(err, fault.ErrUnauthenticated) {
		pg.internal(w, r, q, fmt.Errorf("session: %w", err))
		return nil, false
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if fc, err := r.Cookie(pg.p.cookies.flash); err == nil {
			if b, err := base64.RawURLEncoding.DecodeString(fc.Value); err == nil && len(b) <= 500 {
				q.flash = string(b)
			}
			pg.p.setCookie(w, pg.p.cookies.flash, "", -1)
		}
	} else {
		r.Body = http.MaxBytesReader(w, r.Body, pageMaxForm)
	}
	w.Header().Set("Cache-Control", "no-store")
	return q, true
}

// open wraps a page anyone may see; a signed-in developer sees it with the
// session's chrome. Its forms (if any) are signed-in forms.
func (pg *pages) open(h pageHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, ok := pg.load(w, r)
		if !ok {
			return
		}
		if q.session != nil {
			q.csrf = q.session.CSRF
		}
		h(w, r, q)
	}
}

// anon wraps the signed-out forms (sign-up, sign-in, verification, reset):
// their POSTs must carry the double-submit token of p.anonToken.
func (pg *pages) anon(h pageHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, ok := pg.load(w, r)
		if !ok {
			return
		}
		if r.Method == http.MethodPost && !pg.p.validAnonCSRF(r) {
			pg.forbidden(w, r, q)
			return
		}
		q.csrf = pg.p.anonToken(w, r)
		h(w, r, q)
	}
}

// member wraps the pages of a signed-in developer. Without a session, a
// GET goes to the sign-in page (and back after it); a POST answers 401. A
// POST must carry the session's CSRF token and come from this origin.
func (pg *pages) member(h pageHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, ok := pg.load(w, r)
		if !ok {
			return
		}
		if q.session == nil {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			pg.errorPage(w, r, q, http.StatusUnauthorized, "Your session has ended",
				"Sign in again, then repeat what you were doing.")
			return
		}
		q.csrf = q.session.CSRF
		if r.Method == http.MethodPost && !pg.p.validSessionCSRF(r, *q.session) {
			pg.forbidden(w, r, q)
			return
		}
		h(w, r, q)
	}
}

// render writes a page with status.
func (pg *pages) render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := c.Render(r.Context(), w); err != nil && !errors.Is(err, context.Canceled) {
		pg.p.log.Error("devportal: render", "path", r.URL.Path, "err", err)
	}
}

// redirect answers a successful POST: 303 to the next page, with a flash
// message shown there once.
func (pg *pages) redirect(w http.ResponseWriter, r *http.Request, to, flash string) {
	if flash != "" {
		pg.p.setCookie(w, pg.p.cookies.flash, base64.RawURLEncoding.EncodeToString([]byte(flash)), time.Minute)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (pg *pages) errorPage(w http.ResponseWriter, r *http.Request, q *pageReq, status int, heading, msg string) {
	pg.render(w, r, status, view.Error(view.ErrorPage{Chrome: q.chrome(r, heading, ""), Status: status,
		Heading: heading, Message: msg}))
}

func (pg *pages) notFound(w http.ResponseWriter, r *http.Request, q *pageReq) {
	pg.errorPage(w, r, q, http.StatusNotFound, "Page not found",
		"There is nothing at this address. It may have moved, or it belongs to another account.")
}

func (pg *pages) forbidden(w http.ResponseWriter, r *http.Request, q *pageReq) {
	pg.errorPage(w, r, q, http.StatusForbidden, "This form has expired",
		"The form was open too long or did not come from this site. Go back, reload the page and try again.")
}

// internal logs err and shows a generic 500 page: internal errors never
// reach the developer.
func (pg *pages) internal(w http.ResponseWriter, r *http.Request, q *pageReq, err error) {
	pg.p.log.Error("devportal: page failed", "method", r.Method, "path", r.URL.Path, "err", err)
	pg.errorPage(w, r, q, http.StatusInternalServerError, "Something went wrong",
		"Something went wrong on our side. Please try again in a moment.")
}

// fail answers a domain error of a page: not found, denied, throttled and
// conflicts with their own pages, anything else as a 500.
func (pg *pages) fail(w http.ResponseWriter, r *http.Request, q *pageReq, err error) {
	var de *fault.DeniedError
	var te *fault.ThrottledError
	var ce *fault.ConflictError
	var ve *fault.ValidationError
	switch {
	case errors.Is(err, fault.ErrNotFound):
		pg.notFound(w, r, q)
	case errors.Is(err, fault.ErrUnauthenticated):
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	case errors.As(err, &de):
		pg.errorPage(w, r, q, http.StatusForbidden, "Not allowed", de.Message)
	case errors.As(err, &te):
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(te.RetryAfter.Seconds()))))
		pg.errorPage(w, r, q, http.StatusTooManyRequests, "Too many attempts", pageThrottleText(te))
	case errors.As(err, &ce):
		pg.errorPage(w, r, q, http.StatusConflict, "That did not work", ce.Message)
	case errors.As(err, &ve):
		pg.errorPage(w, r, q, http.StatusUnprocessableEntity, "That did not work", pageValidationText(ve))
	default:
		pg.internal(w, r, q, err)
	}
}

func pageThrottleText(te *fault.ThrottledError) string {
	wait := te.RetryAfter.Round(time.Minute)
	if wait < time.Minute {
		return "Too many attempts. Please wait a minute and try again."
	}
	return "Too many attempts. Please try again in " + pageDuration(wait) + "."
}

func pageValidationText(ve *fault.ValidationError) string {
	parts := make([]string, 0, len(ve.Errors))
	for _, fe := range ve.Errors {
		parts = append(parts, strings.ReplaceAll(fe.Field, "_", " ")+" "+fe.Message)
	}
	return strings.Join(parts, "; ")
}

// pageDuration says a duration in words: "1 hour", "7 days", "90 minutes".
func pageDuration(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.FormatInt(n, 10) + " " + one + "s"
	}
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return unit(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d >= time.Minute:
		return unit(int64(d/time.Minute), "minute")
	}
	return unit(int64(d/time.Second), "second")
}

// ---- forms ----

// pageForm reads a posted form (bounded by the wrapper) into a view.Form.
func pageForm(r *http.Request) view.Form {
	_ = r.ParseForm()
	f := view.Form{Values: url.Values{}, Errors: map[string]string{}}
	for k, v := range r.PostForm {
		if k != "csrf_token" {
			f.Values[k] = v
		}
	}
	return f
}

func pageBlankForm() view.Form {
	return view.Form{Values: url.Values{}, Errors: map[string]string{}}
}

// pageApplyError puts a domain error on a form: validation and conflict
// errors next to their fields (known names the inputs; others go to the
// top), denied and throttled ones at the top. It returns the status to
// answer with, or 0 for an error it does not know (an internal one).
func pageApplyError(f *view.Form, err error, known ...string) int {
	has := func(n string) bool {
		for _, k := range known {
			if k == n {
				return true
			}
		}
		return false
	}
	var ve *fault.ValidationError
	var ce *fault.ConflictError
	var de *fault.DeniedError
	var te *fault.ThrottledError
	switch {
	case errors.As(err, &ve):
		var top []string
		for _, fe := range ve.Errors {
			if !has(fe.Field) {
				top = append(top, strings.ReplaceAll(fe.Field, "_", " ")+" "+fe.Message)
				continue
			}
			if old := f.Errors[fe.Field]; old != "" {
				f.Errors[fe.Field] = old + "; " + fe.Message
			} else {
				f.Errors[fe.Field] = capitalize(fe.Message) + "."
			}
		}
		if len(top) > 0 {
			f.Message = capitalize(strings.Join(top, "; ")) + "."
		}
		return http.StatusUnprocessableEntity
	case errors.As(err, &ce):
		if ce.Field != "" && has(ce.Field) {
			f.Errors[ce.Field] = capitalize(ce.Message) + "."
		} else {
			f.Message = capitalize(ce.Message) + "."
		}
		return http.StatusConflict
	case errors.As(err, &de):
		f.Message = capitalize(de.Message) + "."
		return http.StatusForbidden
	case errors.As(err, &te):
		f.Message = pageThrottleText(te)
		return http.StatusTooManyRequests
	}
	return 0
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// pageNext returns a safe local path to go to after a form ("" when next
// is not one): never another host, never a protocol-relative URL.
func pageNext(next string) string {
	if next == "" || len(next) > 2000 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n\t") {
		return ""
	}
	u, err := url.Parse(next)
	if err != nil || u.Host != "" || u.Scheme != "" {
		return ""
	}
	return next
}

// ---- theme ----

// pageThemeVersion names a colour's stylesheet, for a cache-busting link.
func pageThemeVersion(color string) string {
	sum := sha256.Sum256([]byte("theme1\x00" + color))
	return hex.EncodeToString(sum[:6])
}

// theme serves the tenant's colours as CSS custom properties: inline style
// is blocked by the portal's CSP, so the accent comes from this sheet.
// --accent is the tenant's colour, --accent-text the text colour on it and
// --accent-ink a version dark enough for links on white.
func (pg *pages) theme(w http.ResponseWriter, r *http.Request) {
	ps, err := pg.p.portalSettings(r)
	if err != nil {
		pg.p.log.Error("devportal: theme settings", "err", err)
		http.Error(w, "/* unavailable */", http.StatusServiceUnavailable)
		return
	}
	css := pageThemeCSS(ps.AccentColor)
	etag := `"` + pageThemeVersion(ps.AccentColor) + `"`
	h := w.Header()
	h.Set("Content-Type", "text/css; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("ETag", etag)
	if pageETagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write([]byte(css))
}

// pageETagMatch reports whether an If-None-Match header names etag.
func pageETagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// pageThemeCSS is the stylesheet of an accent colour (#rrggbb, validated by
// settings; anything else falls back to the default).
func pageThemeCSS(color string) string {
	rgb, ok := pageParseColor(color)
	if !ok {
		color = pageDefaultAccent
		rgb, _ = pageParseColor(color)
	}
	text := "#ffffff"
	if pageContrast(rgb, [3]float64{1, 1, 1}) < 4.5 && pageContrast(rgb, [3]float64{0, 0, 0}) > pageContrast(rgb, [3]float64{1, 1, 1}) {
		text = "#111827"
	}
	// Darken the accent until it reads on white (4.5:1) for links and
	// headings.
	ink := rgb
	for i := 0; i < 20 && pageContrast(ink, [3]float64{1, 1, 1}) < 4.5; i++ {
		for j := range ink {
			ink[j] *= 0.9
		}
	}
	return fmt.Sprintf(":root{--accent:%s;--accent-text:%s;--accent-ink:%s;--accent-soft:color-mix(in srgb,%s 12%%,#fff)}\n",
		color, text, pageHex(ink), color)
}

func pageParseColor(s string) ([3]float64, bool) {
	var rgb [3]float64
	if len(s) != 7 || s[0] != '#' {
		return rgb, false
	}
	for i := range 3 {
		v, err := strconv.ParseUint(s[1+2*i:3+2*i], 16, 8)
		if err != nil {
			return rgb, false
		}
		rgb[i] = float64(v) / 255
	}
	return rgb, true
}

func pageHex(rgb [3]float64) string {
	var b [3]byte
	for i, v := range rgb {
		b[i] = byte(math.Round(math.Min(math.Max(v, 0), 1) * 255))
	}
	return "#" + hex.EncodeToString(b[:])
}

// pageContrast is the WCAG contrast ratio of two colours.
func pageContrast(a, b [3]float64) float64 {
	lum := func(c [3]float64) float64 {
		var l [3]float64
		for i, v := range c {
			if v <= 0.03928 {
				l[i] = v / 12.92
			} else {
				l[i] = math.Pow((v+0.055)/1.055, 2.4)
			}
		}
		return 0.2126*l[0] + 0.7152*l[1] + 0.0722*l[2]
	}
	la, lb := lum(a), lum(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// ---- catalogue summaries ----

// pageSummaryTTL is how long the catalogue trusts a cached summary: a new
// document shows its operation count on the catalogue within this time
// (its own page shows it at once).
const pageSummaryTTL = 30 * time.Second

// pageSummaryMax bounds the summary cache; past it the cache starts over.
const pageSummaryMax = 4096

type pageSummaryCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]pageSummary
}

type pageSummary struct {
	sum    docs.Summary
	hasDoc bool
	at     time.Time
}

func (c *pageSummaryCache) get(key string, now time.Time) (pageSummary, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.m[key]
	if !ok || now.Sub(s.at) > c.ttl {
		return pageSummary{}, false
	}
	return s, true
}

func (c *pageSummaryCache) put(key string, s pageSummary) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= pageSummaryMax {
		c.m = map[string]pageSummary{}
	}
	c.m[key] = s
}
