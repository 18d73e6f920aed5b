// Package view renders the tenant portal's pages with templ. Every page takes
// a page model of its own (built by package portal from the domain types) and
// the Chrome shared by the signed-in pages.
package view

import (
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// Chrome is what the signed-in layout shows on every page.
type Chrome struct {
	Title      string
	Active     string
	UserName   string
	UserEmail  string
	Role       string
	TenantName string
	TenantSlug string
	CSRF       string
	// CanWrite hides the controls a viewer cannot use (the server refuses them anyway).
	CanWrite      bool
	CanManageTeam bool
	Flash         string
	// Pending counts the developers and subscriptions waiting for a
	// decision, shown on the approval queue's navigation entry.
	Pending int
	// EmailUnverified shows the banner that asks to confirm the address.
	EmailUnverified bool
	// Config, on the pages where the tenant changes its gateway config,
	// shows a refused change and workers too old for the config (nil:
	// nothing).
	Config *ConfigNotice
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

// Has reports whether a multi-valued input (checkboxes) holds v.
func (f Form) Has(name, v string) bool {
	for _, x := range f.Values[name] {
		if x == v {
			return true
		}
	}
	return false
}

// Failed reports whether the form carries any error.
func (f Form) Failed() bool { return len(f.Errors) > 0 || f.Message != "" }

// Option is one choice of a select or a checkbox group.
type Option struct {
	Value, Label string
}

// Field describes a text-like input.
type Field struct {
	Label, Name, Type, Hint, Placeholder, Autocomplete string
	Required                                           bool
	Min                                                string
}

func fieldID(name string) string { return "f-" + name }

func errID(name string) string { return "e-" + name }

func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return t.UTC().Format("2 Jan 2006")
}

// until says when a future moment comes ("in 3 h"), or that it passed.
func until(t time.Time) string {
	d := time.Until(t)
	switch {
	case d <= 0:
		return "expired " + ago(t)
	case d < time.Minute:
		return "in under a minute"
	case d < time.Hour:
		return fmt.Sprintf("in %d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("in %d h", int(d.Hours()))
	}
	return "on " + t.UTC().Format("2 Jan 2006")
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// countText shows a badge count: above 99 it reads "99+".
func countText(n int) string {
	if n > 99 {
		return "99+"
	}
	return strconv.Itoa(n)
}

// compact formats counts for cards: 1234 -> 1.2k.
func compact(n int64) string {
	switch {
	case n >= 1_000_000:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 10_000:
		return fmt.Sprintf("%.0fk", float64(n)/1e3)
	case n >= 1_000:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return strconv.FormatInt(n, 10)
}

// shortID shows the first block of a UUID; the full id is in the title.
func shortID(id string) string {
	if len(id) == 36 && id[8] == '-' {
		return id[:8]
	}
	return id
}
