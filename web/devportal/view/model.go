// Package view renders the developer portal's pages with templ. Every page
// takes a page model of its own, built by package devportal from the domain
// types, and the Chrome every page shares (the tenant's branding, the
// developer signed in, the flash message). The API reference itself comes
// from web/devportal/docs; the pages frame it.
//
// Element ids and form field names here are stable: browser tests and the
// developers' own scripts select by them (see the package devportal report
// for the list).
package view

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/web/devportal/docs"
)

// Brand is the tenant's look, applied to every page.
type Brand struct {
	// Name is the portal's display name, else the tenant's name.
	Name string
	// LogoURL is an https:// image, "" for none (the name's initial shows).
	LogoURL string
	// SupportEmail is shown in the footer when set.
	SupportEmail string
	// ThemeURL is the per-tenant stylesheet that sets --accent
	// ("/theme.css?v=…"; the version changes with the colour).
	ThemeURL string
}

// Initial is the letter shown when the tenant has no logo.
func (b Brand) Initial() string {
	for _, r := range b.Name {
		return string(r)
	}
	return "?"
}

// Chrome is what the layout shows on every page.
type Chrome struct {
	Brand Brand
	Title string
	// Active is the navigation entry of the page: "home", "apis", "apps",
	// "usage" or "".
	Active string
	// SignedIn is true with a developer session; the fields below are then set.
	SignedIn bool
	DevName  string
	DevEmail string
	// Verified is false until the developer confirmed the address: a banner
	// offers to resend the link.
	Verified bool
	// Pending is true while the tenant has not approved the developer.
	Pending bool
	// CSRF is the session's token for the sign-out and resend forms.
	CSRF string
	// Path is the page's path, where the resend form comes back to.
	Path  string
	Flash string
	// Docs links the API reference's stylesheet and try-it script.
	Docs bool
	// Script links the script of the copy buttons (tryit.js) without the
	// reference's stylesheet.
	Script bool
}

// Form is a submitted (or blank) form: its values and the errors to show next
// to each field, keyed by input name. Message is a form-level error.
type Form struct {
	Values  url.Values
	Errors  map[string]string
	Message string
}

// Get returns the value of an input.
func (f Form) Get(name string) string { return f.Values.Get(name) }

// Err returns the error of an input, "" if none.
func (f Form) Err(name string) string { return f.Errors[name] }

// Failed reports whether the form carries any error.
func (f Form) Failed() bool { return len(f.Errors) > 0 || f.Message != "" }

// Field describes a text-like input. Its id is "f-" + Name unless ID is set.
type Field struct {
	Label, Name, Type, Hint, Placeholder, Autocomplete string
	// ID overrides the input's id (forms repeated on a page need their own).
	ID       string
	Required bool
	Max      int
}

func (fd Field) id() string {
	if fd.ID != "" {
		return fd.ID
	}
	return fieldID(fd.Name)
}

func fieldID(name string) string { return "f-" + name }

func errID(id string) string { return id + "-error" }

// ---- catalogue ----

// APICard is a published API as the catalogue shows it.
type APICard struct {
	ID   string
	Slug string
	Name string
	// Href is the API's page.
	Href string
	// URL is the gateway base URL developers call.
	URL string
	// Auth is the gateway's auth mode: "key", "jwt" or "none".
	Auth        string
	Version     string
	Description string
	// Operations counts the document's operations; HasDoc is false without
	// a document.
	Operations int
	HasDoc     bool
	// Plans names the public plans that include the API.
	Plans []string
}

// AuthLabel names the API's auth mode for badges.
func (a APICard) AuthLabel() string {
	switch a.Auth {
	case docs.AuthNone:
		return "Open"
	case docs.AuthJWT:
		return "JWT"
	}
	return "API key"
}

// PlanCard is a public plan.
type PlanCard struct {
	ID       string
	Name     string
	Price    string // "Free", "$19.00 / month"
	Rate     string // "10 requests / second", "" when unlimited
	Quota    string // "1,000 requests / month", "" when unlimited
	Approval bool
	Priced   bool
	// APIs names the published APIs the plan includes.
	APIs []string
}

// HomePage is the portal's front page.
type HomePage struct {
	Chrome Chrome
	// Tagline is a sentence under the portal's name.
	Tagline string
	APIs    []APICard
	// More is true when the catalogue has more APIs than the preview shows.
	More bool
	// Invite is true when sign-up needs an invitation.
	Invite bool
}

// CatalogPage lists every published API.
type CatalogPage struct {
	Chrome Chrome
	APIs   []APICard
}

// KeyChoice is one of the developer's working keys for an API.
type KeyChoice struct {
	Prefix string
	App    string
	Plan   string
}

// APIPage is an API's page: how to call it and get access, and its
// reference documentation.
type APIPage struct {
	Chrome Chrome
	API    APICard
	// Auth says how to send credentials (used when there is no reference).
	Auth docs.Auth
	// Plans are the public plans that include the API.
	Plans []PlanCard
	// SDKGo and SDKTypeScript are download links ("" hides them).
	SDKGo, SDKTypeScript string
	// Ref is the reference documentation, nil without a document (or with
	// one that does not build: DocBroken).
	Ref       *docs.Reference
	DocBroken bool
	Try       docs.TryItConfig
	// TryNote says why try-it is off, or how to use it.
	TryNote string
	// TryLink and TryAction are the call to action of TryNote ("" for none).
	TryLink, TryAction string
	// Keys are the developer's working keys that can call the API; the
	// KeyForm fills one into the samples and the console.
	Keys    []KeyChoice
	KeyForm Form
	// ShowKeyForm offers the form (a signed-in developer who may try).
	ShowKeyForm bool
	// KeyFilled is true when the page carries a key the developer entered.
	KeyFilled bool
	// Subscribe links to where the developer gets a key.
	Subscribe string
}

// ---- authentication ----

// SignupPage is the sign-up form.
type SignupPage struct {
	Chrome Chrome
	Form   Form
	// CSRF is the signed-out form token.
	CSRF string
	// Mode is the tenant's signup mode: "open", "approval" or "invite".
	Mode string
	// Invite is the invitation token from the link ("" for none).
	Invite string
	// Domains limits sign-up to these email domains (empty: any).
	Domains []string
	// OIDC offers sign-in with the tenant's identity provider.
	OIDC bool
}

// Closed is true when the form cannot succeed: invitation-only without an
// invitation.
func (p SignupPage) Closed() bool { return p.Mode == "invite" && p.Invite == "" }

// LoginPage is the sign-in form.
type LoginPage struct {
	Chrome Chrome
	Form   Form
	CSRF   string
	OIDC   bool
}

// VerifyPage confirms an address: GET shows a button, POST consumes the
// token (mail scanners prefetch links, so GET never does).
type VerifyPage struct {
	Chrome Chrome
	CSRF   string
	Token  string
	Form   Form
}

// ForgotPage asks for the address to send a reset link to.
type ForgotPage struct {
	Chrome Chrome
	Form   Form
	CSRF   string
}

// ResetPage sets a new password with the token of a reset link.
type ResetPage struct {
	Chrome Chrome
	Form   Form
	CSRF   string
	Token  string
}

// MessagePage is a short page after an action: what happened, what next.
type MessagePage struct {
	Chrome  Chrome
	Heading string
	Text    []string
	// Href and Action are the call to action ("" for none).
	Href, Action string
}

// ErrorPage is a 4xx or 5xx page in the portal's look.
type ErrorPage struct {
	Chrome  Chrome
	Status  int
	Heading string
	Message string
}

// ---- apps, subscriptions and keys ----

// AppRow is an app in the list.
type AppRow struct {
	ID          string
	Name        string
	Description string
	Created     time.Time
	// Subscriptions counts live subscriptions; Active the active ones.
	Subscriptions int
	Active        int
	Keys          int
	// Plans names the plans of the live subscriptions.
	Plans []string
}

// AppsPage lists the developer's apps with the create form.
type AppsPage struct {
	Chrome Chrome
	Apps   []AppRow
	Form   Form
	// Max is the most apps a developer may have.
	Max int
}

// KeyRow is one key of a subscription.
type KeyRow struct {
	ID      string
	Prefix  string
	Created time.Time
	// Expires is when a rotated key stops working (nil: never).
	Expires *time.Time
	// Status is "active", "expiring", "expired" or "revoked".
	Status string
	// Usable keys can be rotated and revoked.
	Usable bool
	// Rotate is the key's rotate form (errors after a failed attempt).
	Rotate Form
}

// SubView is a subscription with its keys.
type SubView struct {
	ID       string
	PlanID   string
	PlanName string
	// Status is the subscription's state (catalog.Sub*).
	Status  string
	Created time.Time
	Keys    []KeyRow
	// Working counts usable keys.
	Working int
	// MaxKeys is the most working keys a subscription may hold.
	MaxKeys int

	// Paid is true for a subscription of a priced plan; Billed when a
	// Stripe subscription bills it.
	Paid, Billed bool
	// BillingHref opens Stripe Checkout (payment_required) or the Customer
	// Portal (/billing/{id}); "" while the platform runs without billing.
	BillingHref string
	// PaymentNote says why a payment_required subscription cannot be paid
	// now ("" when it can).
	PaymentNote string
	// GraceUntil ends a past-due subscription's grace period; GraceOver
	// is true once it has (its keys are refused).
	GraceUntil *time.Time
	GraceOver  bool
	// PeriodEnd ends the current billing period; CancelAtPeriodEnd says the
	// subscription ends then.
	PeriodEnd         *time.Time
	CancelAtPeriodEnd bool
	// Estimate is the next invoice so far (nil when unknown or unpaid).
	Estimate *Estimate
	// Invoices are the past invoices, newest first.
	Invoices []InvoiceRow
}

// PlanOption is a plan the subscribe form offers.
type PlanOption struct {
	PlanCard
	// Taken is true when the app already holds a live subscription to it.
	Taken bool
}

// AppPage is one app: subscriptions, keys, and the forms that change them.
type AppPage struct {
	Chrome      Chrome
	ID          string
	Name        string
	Description string
	Created     time.Time
	Subs        []SubView
	// Past are canceled and rejected subscriptions.
	Past    []SubView
	Plans   []PlanOption
	SubForm Form
	// Blocked says why the developer cannot subscribe yet ("" when they can).
	Blocked string
	// OpenRotate is the key whose rotate form shows (after an error).
	OpenRotate string
	// CheckoutNote is the banner after Stripe Checkout sent the developer
	// back ("" for none).
	CheckoutNote string
}

// KeyIssuedPage shows a new key once, right in the response to the POST
// that made it: the key is never stored where it could be read again.
type KeyIssuedPage struct {
	Chrome  Chrome
	AppID   string
	AppName string
	Plan    string
	Key     string
	Prefix  string
	// Rotated is true after a rotation; OldPrefix and OldExpires then say
	// until when the old key works ("" expiry: it stopped at once).
	Rotated    bool
	OldPrefix  string
	OldExpires *time.Time
	// APIs are the plan's published APIs, each with a form that opens its
	// page with this key filled in.
	APIs []APICard
}

// ---- usage ----

// Scope is one choice of what the usage page shows: everything, an app or
// a key.
type Scope struct {
	Label  string
	Href   string
	Active bool
	// Sub is true for a key (indented under its app).
	Sub bool
}

// Stat is a figure above the charts.
type Stat struct {
	Label, Value, Note string
}

// Window is one time range of the usage page: its figures and charts.
type Window struct {
	// ID is "day" (last 24 h by hour) or "month" (last 30 days by day).
	ID       string
	Title    string
	Stats    []Stat
	Requests Chart
	Latency  Chart
	// Empty is true when the window has no traffic.
	Empty bool
}

// UsageRow is the traffic of an app or a key in the last 24 h and 30 days.
type UsageRow struct {
	ID    string
	Name  string
	App   string
	Href  string
	Day   Totals
	Month Totals
}

// Totals are a row's figures in one window.
type Totals struct {
	Requests int64
	Errors   int64
	P50, P99 float64
}

// QuotaRow is a subscription's quota in the current period.
type QuotaRow struct {
	App    string
	AppID  string
	Plan   string
	Status string
	// Limit 0 means no quota.
	Limit, Used, Left int64
	Period            string
	PeriodEnd         time.Time
	// Unknown is true when the counter could not be read.
	Unknown bool
}

// Percent is the share of the quota used, 0..100.
func (q QuotaRow) Percent() int {
	if q.Limit <= 0 {
		return 0
	}
	p := int(q.Used * 100 / q.Limit)
	return min(max(p, 0), 100)
}

// UsagePage shows a developer's traffic and quotas.
type UsagePage struct {
	Chrome Chrome
	// NoApps is true before the developer made an app.
	NoApps bool
	Scopes []Scope
	// ScopeLabel names what the charts show.
	ScopeLabel string
	Windows    []Window
	Apps       []UsageRow
	Keys       []UsageRow
	Quotas     []QuotaRow
}

// ---- formatting ----

func itoa(n int) string { return strconv.Itoa(n) }

func date(t time.Time) string { return t.UTC().Format("2 Jan 2006") }

func stamp(t time.Time) string { return t.UTC().Format("2 Jan 2006 15:04 UTC") }

func isoTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// count formats a count with thousands separators: 12345 -> 12,345.
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func ms(v float64) string {
	if v == 0 {
		return "–"
	}
	if v < 10 {
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

// width is the CSS class of a bar at p percent (w0, w5, … w100): inline
// styles are blocked by the portal's CSP.
func width(p int) string {
	p = min(max(p, 0), 100)
	return "w" + itoa((p+4)/5*5)
}

// statusLabel names a subscription's state for people.
func statusLabel(s string) string {
	switch s {
	case "pending":
		return "pending approval"
	case "payment_required":
		return "payment required"
	case "past_due":
		return "past due"
	}
	return s
}

// keyStatusLabel names a key's state for people.
func keyStatusLabel(s string) string {
	if s == "expiring" {
		return "active until expiry"
	}
	return s
}

// subNote explains a subscription's state.
func subNote(s string) string {
	switch s {
	case "pending":
		return "Waiting for approval: the API provider reviews this subscription. You get a mail when it is decided; keys are issued then."
	case "payment_required":
		return "Payment required: complete the payment to activate this subscription. Keys are issued once the payment is confirmed."
	case "past_due":
		return "A payment failed. Keys keep working for a grace period; update your payment details."
	case "suspended":
		return "Suspended by the API provider: keys are refused."
	case "canceled":
		return "Canceled: its keys no longer work."
	case "rejected":
		return "The API provider declined this subscription."
	}
	return ""
}
