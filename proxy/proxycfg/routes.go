package proxycfg

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Limits of a route's path template. Matching is linear in the request path
// whatever the template, so these only bound the work of compiling and of
// one comparison.
const (
	// MaxRoutePathLen bounds the length of a route's path template.
	MaxRoutePathLen = 2048
	// MaxRouteParams bounds the {parameters} of one path template.
	MaxRouteParams = 16
	// MaxRouteMethods bounds the distinct methods of one API's routes,
	// the nine standard ones (GET ... CONNECT) counted whether used or
	// not.
	MaxRouteMethods = 64
)

// standardMethods are the methods every API's method set has room for.
var standardMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}

// validateRouteMethods checks that an API's routes use at most
// MaxRouteMethods methods.
func validateRouteMethods(routes []Route) error {
	extra := map[string]bool{}
	for _, r := range routes {
		if !slices.Contains(standardMethods, r.Method) {
			extra[r.Method] = true
		}
	}
	if len(extra)+len(standardMethods) > MaxRouteMethods {
		return fmt.Errorf("routes use more than %d distinct methods", MaxRouteMethods)
	}
	return nil
}

// Route is one operation an API serves: a method and an OpenAPI path
// template, usually imported from the API's OpenAPI document. An API with
// Routes answers only requests that match one of them (404 for an unknown
// path, 405 for a known path with another method); an API without Routes
// forwards every method and path under its base path.
type Route struct {
	// Method is the HTTP method (an RFC 9110 token, matched exactly, so
	// upper case for the standard methods). A GET route also admits HEAD.
	Method string `json:"method"`
	// Path is the path template relative to the API's base path, starting
	// with "/": "/items/{id}". A {name} matches a non-empty part of one
	// segment (never a "/"); everything else matches literally. A trailing
	// slash is significant.
	Path string `json:"path"`
}

// ValidateRoute checks a route: the method is a token, the path starts with
// "/" and its braces pair up within segments around non-empty names. The
// control plane validates imported routes with it so that a compiled
// snapshot never fails on them.
func ValidateRoute(r Route) error {
	if !isToken(r.Method) {
		return fmt.Errorf("route method %q is not an HTTP method token", r.Method)
	}
	if err := validateRoutePath(r.Path); err != nil {
		return fmt.Errorf("route path %q: %w", r.Path, err)
	}
	return nil
}

func validateRoutePath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return errors.New("must start with /")
	}
	if len(p) > MaxRoutePathLen {
		return fmt.Errorf("longer than %d bytes", MaxRoutePathLen)
	}
	open := -1 // index of the unclosed "{", or -1
	params := 0
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '{':
			if open >= 0 {
				return errors.New("nested {")
			}
			if params++; params > MaxRouteParams {
				return fmt.Errorf("more than %d parameters", MaxRouteParams)
			}
			open = i
		case c == '}':
			if open < 0 {
				return errors.New("} without {")
			}
			if i == open+1 {
				return errors.New("empty parameter name {}")
			}
			open = -1
		case c == '/' && open >= 0:
			return errors.New("parameter spans a /")
		case c < 0x21 || c == 0x7f:
			return errors.New("contains a space or control character")
		}
	}
	if open >= 0 {
		return errors.New("unclosed {")
	}
	return nil
}

// isToken reports whether s is a non-empty RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
