package proxycfg

import (
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// capabilityOfField is the capability version that gave each field of a
// shard its meaning. TestEveryShardFieldHasACapability fails on a field
// missing here: a new field is a change of meaning, which bumps
// CapabilityVersion (capability.go) and, when a tenant uses it,
// Tenant.Capability.
var capabilityOfField = map[string]int{
	"capability":  CapShards,
	"generation":  CapShards,
	"compiled_at": CapShards,

	"tenant.id":                                         CapBase,
	"tenant.slug":                                       CapBase,
	"tenant.domains":                                    CapCustomDomains,
	"tenant.upstreams.id":                               CapBase,
	"tenant.upstreams.name":                             CapBase,
	"tenant.upstreams.algorithm":                        CapBase,
	"tenant.upstreams.targets.url":                      CapBase,
	"tenant.upstreams.targets.weight":                   CapBase,
	"tenant.upstreams.health_check.path":                CapBase,
	"tenant.upstreams.health_check.interval_ms":         CapBase,
	"tenant.upstreams.health_check.timeout_ms":          CapBase,
	"tenant.upstreams.health_check.healthy_threshold":   CapBase,
	"tenant.upstreams.health_check.unhealthy_threshold": CapBase,
	"tenant.upstreams.health_check.expected_status":     CapBase,
	"tenant.upstreams.hash_on.source":                   CapDataplane,
	"tenant.upstreams.hash_on.name":                     CapDataplane,
	"tenant.upstreams.hash_on.bounded_load":             CapDataplane,
	"tenant.upstreams.outlier.consecutive_5xx":          CapDataplane,
	"tenant.upstreams.outlier.consecutive_errors":       CapDataplane,
	"tenant.upstreams.outlier.base_ejection_ms":         CapDataplane,
	"tenant.upstreams.outlier.max_ejection_ms":          CapDataplane,
	"tenant.upstreams.outlier.max_ejection_percent":     CapDataplane,
	"tenant.upstreams.retry.attempts":                   CapDataplane,
	"tenant.upstreams.retry.budget_percent":             CapDataplane,
	"tenant.upstreams.retry.min_per_second":             CapDataplane,
	"tenant.upstreams.circuit_breaker.max_requests":     CapDataplane,

	"tenant.apis.id":                           CapBase,
	"tenant.apis.slug":                         CapBase,
	"tenant.apis.name":                         CapBase,
	"tenant.apis.base_path":                    CapBase,
	"tenant.apis.upstream_id":                  CapBase,
	"tenant.apis.auth":                         CapBase,
	"tenant.apis.strip_base_path":              CapBase,
	"tenant.apis.timeout_ms":                   CapBase,
	"tenant.apis.connect_timeout_ms":           CapDataplane,
	"tenant.apis.read_timeout_ms":              CapDataplane,
	"tenant.apis.max_body_bytes":               CapDataplane,
	"tenant.apis.host":                         CapDataplane,
	"tenant.apis.jwt.issuer":                   CapDataplane,
	"tenant.apis.jwt.audiences":                CapDataplane,
	"tenant.apis.jwt.claim":                    CapDataplane,
	"tenant.apis.jwt.algorithms":               CapDataplane,
	"tenant.apis.jwt.plan_id":                  CapDataplane,
	"tenant.apis.jwt.subjects.value":           CapDataplane,
	"tenant.apis.jwt.subjects.consumer_id":     CapDataplane,
	"tenant.apis.jwt.subjects.plan_id":         CapDataplane,
	"tenant.apis.jwt.scopes":                   CapDataplane,
	"tenant.apis.jwt.route_scopes.path_prefix": CapNormalizedPaths,
	"tenant.apis.jwt.route_scopes.methods":     CapNormalizedPaths,
	"tenant.apis.jwt.route_scopes.scopes":      CapNormalizedPaths,
	"tenant.apis.rate_limit.requests":          CapThrottling,
	"tenant.apis.rate_limit.per_seconds":       CapThrottling,
	"tenant.apis.rate_limit.burst":             CapThrottling,
	"tenant.apis.rate_limit.scope":             CapThrottling,
	"tenant.apis.routes.method":                CapNormalizedPaths,
	"tenant.apis.routes.path":                  CapNormalizedPaths,

	"tenant.plans.id":                     CapBase,
	"tenant.plans.name":                   CapBase,
	"tenant.plans.rate_limit.requests":    CapBase,
	"tenant.plans.rate_limit.per_seconds": CapBase,
	"tenant.plans.rate_limit.burst":       CapThrottling,
	"tenant.plans.rate_limit.scope":       CapThrottling,
	"tenant.plans.quota.requests":         CapBase,
	"tenant.plans.quota.period":           CapBase,
	"tenant.plans.api_ids":                CapBase,
	"tenant.plans.concurrency":            CapThrottling,
}

// jsonFields lists the JSON paths of the leaves of t (structs are walked,
// slices and pointers looked through; time.Time is a leaf).
func jsonFields(t reflect.Type, prefix string, out *[]string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeOf(time.Time{}) {
		*out = append(*out, prefix)
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if prefix != "" {
			name = prefix + "." + name
		}
		jsonFields(f.Type, name, out)
	}
}

func TestEveryShardFieldHasACapability(t *testing.T) {
	t.Parallel()
	var fields []string
	jsonFields(reflect.TypeOf(Shard{}), "", &fields)
	sort.Strings(fields)
	seen := map[string]bool{}
	for _, f := range fields {
		seen[f] = true
		v, ok := capabilityOfField[f]
		if !ok {
			t.Errorf("shard field %q has no capability version: a new field changes the contract's meaning; "+
				"bump CapabilityVersion (capability.go), make Tenant.Capability need it when used, and list it here", f)
			continue
		}
		if v < CapBase || v > CapabilityVersion {
			t.Errorf("shard field %q: capability %d out of range", f, v)
		}
	}
	for f := range capabilityOfField {
		if !seen[f] {
			t.Errorf("capabilityOfField lists %q, which the shard no longer has", f)
		}
	}
}

func TestTenantCapability(t *testing.T) {
	t.Parallel()
	base := func() Tenant {
		return Tenant{ID: "t", Slug: "acme",
			Upstreams: []Upstream{{ID: "u", Algorithm: AlgorithmRoundRobin, Targets: []Target{{URL: "http://a", Weight: 1}}}},
			APIs:      []API{{ID: "a", BasePath: "/a", UpstreamID: "u", Auth: AuthKey}},
			Plans:     []Plan{{ID: "p", RateLimit: RateLimit{Requests: 10, PerSeconds: 1}, APIIDs: []string{"a"}}}}
	}
	tests := []struct {
		name   string
		change func(*Tenant)
		want   int
	}{
		{name: "plain", change: func(*Tenant) {}, want: CapBase},
		{name: "weighted", change: func(t *Tenant) { t.Upstreams[0].Algorithm = AlgorithmWeighted }, want: CapBase},
		{name: "least conn", change: func(t *Tenant) { t.Upstreams[0].Algorithm = AlgorithmLeastConn }, want: CapDataplane},
		{name: "retry", change: func(t *Tenant) { t.Upstreams[0].Retry.Attempts = 1 }, want: CapDataplane},
		{name: "jwt", change: func(t *Tenant) { t.APIs[0].JWT = &JWT{Issuer: "https://i", Audiences: []string{"x"}} }, want: CapDataplane},
		{name: "body limit", change: func(t *Tenant) { t.APIs[0].MaxBodyBytes = 10 }, want: CapDataplane},
		{name: "api ceiling", change: func(t *Tenant) { t.APIs[0].RateLimit = RateLimit{Requests: 1, PerSeconds: 1} }, want: CapThrottling},
		{name: "burst", change: func(t *Tenant) { t.Plans[0].RateLimit.Burst = 2 }, want: CapThrottling},
		{name: "consumer scope", change: func(t *Tenant) { t.Plans[0].RateLimit.Scope = ScopeConsumer }, want: CapThrottling},
		{name: "concurrency", change: func(t *Tenant) { t.Plans[0].Concurrency = 3 }, want: CapThrottling},
		{name: "custom domain", change: func(t *Tenant) { t.Domains = []string{"api.example.com"} }, want: CapCustomDomains},
		{name: "routes", change: func(t *Tenant) { t.APIs[0].Routes = []Route{{Method: "GET", Path: "/x"}} }, want: CapNormalizedPaths},
		{name: "route scopes", change: func(t *Tenant) {
			t.APIs[0].JWT = &JWT{Issuer: "https://i", Audiences: []string{"x"}, RouteScopes: []RouteScopes{{PathPrefix: "/admin", Scopes: []string{"a"}}}}
		}, want: CapNormalizedPaths},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tn := base()
			tc.change(&tn)
			if got := tn.Capability(); got != tc.want {
				t.Fatalf("capability %d, want %d", got, tc.want)
			}
		})
	}
}

func TestDecodeShard(t *testing.T) {
	t.Parallel()
	tn := Tenant{ID: "t1", Slug: "acme", Domains: []string{"api.acme.example"},
		Upstreams: []Upstream{{ID: "u", Algorithm: AlgorithmRoundRobin, Targets: []Target{{URL: "http://a", Weight: 1}}}},
		APIs: []API{{ID: "a", BasePath: "/a", UpstreamID: "u", Auth: AuthNone,
			Routes: []Route{{Method: "GET", Path: "/items"}}}}}
	good, err := json.Marshal(NewShard(tn, 3, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := DecodeShard(good, CapabilityVersion); err != nil || s.Generation != 3 || s.Capability != CapNormalizedPaths {
		t.Fatalf("good shard: %+v, %v", s, err)
	}
	var tooNew *TooNewError
	if _, err := DecodeShard(good, CapNormalizedPaths-1); !errors.As(err, &tooNew) || tooNew.Slug != "acme" ||
		tooNew.TenantID != "t1" || len(tooNew.Domains) != 1 || tooNew.Need != CapNormalizedPaths {
		t.Fatalf("a worker too old for routes: %v", err)
	}
	bad := []struct {
		name, raw, want string
	}{
		{name: "unknown field", raw: strings.Replace(string(good), `"slug":"acme"`, `"slug":"acme","allow_list":["10.0.0.0/8"]`, 1),
			want: "unknown field"},
		{name: "unknown nested field", raw: strings.Replace(string(good), `"method":"GET"`, `"method":"GET","deny":true`, 1),
			want: "unknown field"},
		{name: "trailing data", raw: string(good) + `{}`, want: "decode shard"},
		{name: "claims too little", raw: strings.Replace(string(good), `"capability":8`, `"capability":1`, 1),
			want: "needs 8"},
		{name: "invalid tenant", raw: strings.Replace(string(good), `"base_path":"/a"`, `"base_path":"a"`, 1),
			want: "base path"},
		{name: "capability unknown", raw: strings.Replace(string(good), `"capability":8`, `"capability":0`, 1),
			want: "capability 0"},
		{name: "not json", raw: `{"capability":`, want: "decode shard"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeShard([]byte(tc.raw), CapabilityVersion)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestIndexEntryAndMessage(t *testing.T) {
	t.Parallel()
	e := IndexEntry{Generation: 12, Capability: 3, Sum: ShardSum([]byte("x")), Seq: 99}
	got, err := ParseIndexEntry(e.String())
	if err != nil || got != e {
		t.Fatalf("round trip %+v, %v", got, err)
	}
	for _, bad := range []string{"", "1 2 s", "0 1 s 1", "1 0 s 1", "x 1 s 1"} {
		if _, err := ParseIndexEntry(bad); err == nil {
			t.Errorf("ParseIndexEntry(%q) accepted", bad)
		}
	}
	seq, ids, err := ParseChannelMessage(ChannelMessage(7, []string{"a", "b"}))
	if err != nil || seq != 7 || len(ids) != 2 || ids[1] != "b" {
		t.Fatalf("message: %d %v %v", seq, ids, err)
	}
	if seq, ids, err := ParseChannelMessage(ChannelMessage(8, nil)); err != nil || seq != 8 || ids != nil {
		t.Fatalf("empty message: %d %v %v", seq, ids, err)
	}
	if _, _, err := ParseChannelMessage("seven"); err == nil {
		t.Fatal("malformed message accepted")
	}
}
