package publish_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
)

func TestDataplaneSettingsCompile(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start()
	ctx := context.Background()
	up, err := h.cat.CreateUpstream(ctx, h.who, catalog.UpstreamInput{Name: "pool", Algorithm: proxycfg.AlgorithmConsistentHash,
		Targets: []catalog.Target{{URL: "http://127.0.0.1:9001"}, {URL: "http://127.0.0.1:9002"}},
		UpstreamDataplane: catalog.UpstreamDataplane{
			HashOn:         &proxycfg.HashOn{Source: proxycfg.HashOnHeader, Name: "X-User", BoundedLoad: 1.5},
			Outlier:        &proxycfg.Outlier{Consecutive5xx: 5, ConsecutiveErrors: 2, MaxEjectionPercent: 30},
			Retry:          &proxycfg.Retry{Attempts: 2},
			CircuitBreaker: &proxycfg.CircuitBreaker{MaxRequests: 100},
		}})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := h.cat.CreatePlan(ctx, h.who, catalog.PlanInput{Name: "Free"})
	if err != nil {
		t.Fatal(err)
	}
	jwt := &proxycfg.JWT{Issuer: "https://idp.example.com", Audiences: []string{"orders"}, PlanID: plan.ID,
		Subjects: []proxycfg.JWTSubject{{Value: "svc-1", PlanID: plan.ID}}, Scopes: []string{"orders:read"}}
	api, err := h.cat.CreateAPI(ctx, h.who, catalog.APIInput{Name: "Orders", Slug: "orders", BasePath: "/orders",
		UpstreamID: up.ID, Auth: proxycfg.AuthJWT, APIDataplane: catalog.APIDataplane{
			JWT: jwt, MaxBodyBytes: 1 << 20, Host: proxycfg.HostPreserve, ConnectTimeoutMS: 500, ReadTimeoutMS: 2000}})
	if err != nil {
		t.Fatal(err)
	}
	if api.JWT == nil || api.JWT.Claim != "sub" || api.MaxBodyBytes != 1<<20 {
		t.Fatalf("stored api %+v", api)
	}
	snap := h.snapshot(h.dbGeneration())
	tn := snap.Tenants[0]
	u := tn.Upstreams[0]
	if u.Algorithm != proxycfg.AlgorithmConsistentHash || u.HashOn == nil || u.HashOn.Name != "X-User" ||
		u.Outlier.Consecutive5xx != 5 || u.Retry.Attempts != 2 || u.CircuitBreaker.MaxRequests != 100 {
		t.Fatalf("compiled upstream %+v", u)
	}
	a := tn.APIs[0]
	if a.JWT == nil || a.JWT.Issuer != jwt.Issuer || a.JWT.PlanID != plan.ID || len(a.JWT.Subjects) != 1 ||
		a.Host != proxycfg.HostPreserve || a.ConnectTimeoutMS != 500 || a.ReadTimeoutMS != 2000 || a.MaxBodyBytes != 1<<20 {
		t.Fatalf("compiled api %+v (jwt %+v)", a, a.JWT)
	}

	// Deleting the plan a JWT API names keeps the snapshot valid: the
	// reference is dropped (callers get 403) rather than every worker
	// rejecting the config.
	if err := h.cat.DeletePlan(ctx, h.who, plan.ID); err != nil {
		t.Fatal(err)
	}
	snap = h.snapshot(h.dbGeneration())
	if j := snap.Tenants[0].APIs[0].JWT; j.PlanID != "" || len(j.Subjects) != 0 {
		t.Fatalf("stale plan references kept: %+v", j)
	}
}

func TestDataplaneValidation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	tests := []struct {
		name  string
		in    catalog.UpstreamInput
		field string
	}{
		{name: "consistent hash without key", in: catalog.UpstreamInput{Algorithm: proxycfg.AlgorithmConsistentHash}, field: "hash_on"},
		{name: "hash key on round robin", in: catalog.UpstreamInput{Algorithm: proxycfg.AlgorithmRoundRobin,
			UpstreamDataplane: catalog.UpstreamDataplane{HashOn: &proxycfg.HashOn{Source: proxycfg.HashOnClientIP}}}, field: "hash_on"},
		{name: "header source without name", in: catalog.UpstreamInput{Algorithm: proxycfg.AlgorithmConsistentHash,
			UpstreamDataplane: catalog.UpstreamDataplane{HashOn: &proxycfg.HashOn{Source: proxycfg.HashOnHeader}}}, field: "hash_on.name"},
		{name: "too many retries", in: catalog.UpstreamInput{Algorithm: proxycfg.AlgorithmRoundRobin,
			UpstreamDataplane: catalog.UpstreamDataplane{Retry: &proxycfg.Retry{Attempts: 9}}}, field: "retry.attempts"},
		{name: "ejection share over 100", in: catalog.UpstreamInput{Algorithm: proxycfg.AlgorithmLeastConn,
			UpstreamDataplane: catalog.UpstreamDataplane{Outlier: &proxycfg.Outlier{MaxEjectionPercent: 150}}}, field: "outlier.max_ejection_percent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Name = "u"
			tc.in.Targets = []catalog.Target{{URL: "http://127.0.0.1:9001"}}
			_, err := h.cat.CreateUpstream(ctx, h.who, tc.in)
			var ve *fault.ValidationError
			if !errors.As(err, &ve) || !hasField(ve, tc.field) {
				t.Fatalf("err = %v, want a validation error on %s", err, tc.field)
			}
		})
	}
	up, err := h.cat.CreateUpstream(ctx, h.who, catalog.UpstreamInput{Name: "u", Targets: []catalog.Target{{URL: "http://127.0.0.1:9001"}}})
	if err != nil {
		t.Fatal(err)
	}
	apiTests := []struct {
		name  string
		in    catalog.APIInput
		field string
	}{
		{name: "jwt without settings", in: catalog.APIInput{Auth: proxycfg.AuthJWT}, field: "jwt"},
		{name: "jwt settings on key auth", in: catalog.APIInput{Auth: proxycfg.AuthKey,
			APIDataplane: catalog.APIDataplane{JWT: &proxycfg.JWT{Issuer: "https://idp.example", Audiences: []string{"a"}}}}, field: "jwt"},
		{name: "jwt HS256", in: catalog.APIInput{Auth: proxycfg.AuthJWT,
			APIDataplane: catalog.APIDataplane{JWT: &proxycfg.JWT{Issuer: "https://idp.example", Audiences: []string{"a"}, Algorithms: []string{"HS256"}}}}, field: "jwt"},
		{name: "jwt unknown plan", in: catalog.APIInput{Auth: proxycfg.AuthJWT,
			APIDataplane: catalog.APIDataplane{JWT: &proxycfg.JWT{Issuer: "https://idp.example", Audiences: []string{"a"}, PlanID: "00000000-0000-0000-0000-000000000000"}}}, field: "jwt"},
		{name: "bad host", in: catalog.APIInput{APIDataplane: catalog.APIDataplane{Host: "a b"}}, field: "host"},
		{name: "negative body limit", in: catalog.APIInput{APIDataplane: catalog.APIDataplane{MaxBodyBytes: -1}}, field: "max_body_bytes"},
	}
	for _, tc := range apiTests {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Name, tc.in.Slug, tc.in.BasePath, tc.in.UpstreamID = "A", "a", "/a", up.ID
			_, err := h.cat.CreateAPI(ctx, h.who, tc.in)
			var ve *fault.ValidationError
			if !errors.As(err, &ve) || !hasField(ve, tc.field) {
				t.Fatalf("err = %v, want a validation error on %s", err, tc.field)
			}
		})
	}
}

func hasField(ve *fault.ValidationError, field string) bool {
	for _, f := range ve.Errors {
		if f.Field == field {
			return true
		}
	}
	return false
}
