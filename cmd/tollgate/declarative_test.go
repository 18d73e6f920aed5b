package main

import (
	"testing"
)

// TestDefaultsRoundTrip: leaving out a default (bare, what export writes)
// and filling it in again (filled, what apply compares) gives the same
// object, for every kind of the format.
func TestDefaultsRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		spec interface {
			roundTrip() (filled, again any)
		}
	}{
		{"bare upstream", upstreamSpec{Name: "u", Targets: []targetSpec{{URL: "http://h:1"}}}},
		{"upstream with defaults spelled out", upstreamSpec{Name: " u ", Algorithm: "round_robin",
			Targets:     []targetSpec{{URL: "http://h:1", Weight: intPtr(1)}, {URL: "http://h:2", Weight: intPtr(5)}},
			HealthCheck: &healthCheckSpec{Path: "/", IntervalMS: 10_000, TimeoutMS: 2_000, HealthyThreshold: 2, UnhealthyThreshold: 3}}},
		{"short health interval", upstreamSpec{Name: "u", Targets: []targetSpec{{URL: "http://h:1"}},
			HealthCheck: &healthCheckSpec{IntervalMS: 500}}},
		{"empty outlier is not none", upstreamSpec{Name: "u", Targets: []targetSpec{{URL: "http://h:1"}}, Outlier: &outlierSpec{}}},
		{"api", apiSpec{Name: "A", Slug: "a", BasePath: "/a", Upstream: "u", StripBasePath: boolPtr(false),
			JWT: &jwtSpec{Issuer: "https://i", Claim: "sub", Algorithms: []string{"RS256"}}}},
		{"api with defaults spelled out", apiSpec{Name: "A", Slug: "a", BasePath: "/a", Upstream: "u", Auth: "key",
			StripBasePath: boolPtr(true), RateLimit: &rateLimitSpec{}}},
		{"plan", planSpec{Name: "P", APIs: []string{"b", "a"}, RateLimit: &rateLimitSpec{Scope: "key"},
			Quota: &quotaSpec{Period: "month"}, Price: &priceSpec{Currency: "EUR", Interval: "month"}}},
		{"portal", portalSpec{Signup: "open", AccentColor: "#ABCDEF", AllowedEmailDomains: []string{"@Example.com", "example.com"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			filled, again := tc.spec.roundTrip()
			if changes := diffFields(filled, again); len(changes) > 0 {
				t.Errorf("bare then filled differs from filled: %+v", changes)
			}
		})
	}
}

func (u upstreamSpec) roundTrip() (any, any) { f := u.filled(); return f, f.bare().filled() }
func (a apiSpec) roundTrip() (any, any)      { f := a.filled(); return f, f.bare().filled() }
func (p planSpec) roundTrip() (any, any)     { f := p.filled(); return f, f.bare().filled() }
func (p portalSpec) roundTrip() (any, any)   { f := p.filled(); return f, f.bare().filled() }

// TestFormatField maps the control plane's field names to the format's.
func TestFormatField(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"upstream_id": "upstream", "api_ids[2]": "apis[2]", "jwt.plan_id": "jwt.plan",
		"jwt.subjects[0].plan_id": "jwt.subjects[0].plan", "health_check.interval_ms": "health_check.interval_ms",
	} {
		if got := formatField(in); got != want {
			t.Errorf("formatField(%s) = %s, want %s", in, got, want)
		}
	}
}
