// Package limits holds the per-tenant limits an operator sets so that no
// tenant can grow everyone's cost (issues 10 and 12): how many objects of
// each kind a tenant may hold, the shortest health-check interval its
// upstreams may ask for, and the size of its compiled gateway config, the
// share of the snapshot that every worker downloads, decodes and keeps.
//
// The operator sets defaults for every tenant through environment variables
// (FromEnv, TOLLGATE_LIMIT_*) and raises or lowers them per tenant
// (PUT /v1/tenants/{id}/limits, stored in tenant_limits). The domain
// packages check them in the transaction of each change, under the tenant's
// limits lock (Lock), so that two concurrent requests cannot both take the
// last unit; a refused change writes nothing and returns a
// *fault.LimitError.
//
// The defaults keep 10,000 tenants on one deployment (DESIGN.md "Scale past
// one machine": 100k routes, 1M keys): a tenant at every default cap compiles
// to at most ConfigBytes (256 KiB, about a hundred times the typical tenant),
// so a handful of large tenants cost each worker a few megabytes, not the
// platform's memory. The count limits are set well above what a typical
// tenant needs; config_bytes is the one that binds a tenant that grows in
// every direction at once (large JWT subject lists, plans naming many APIs).
// Keys and consumers are not in the snapshot: their caps bound Redis and
// Postgres (about 400 bytes of Redis per key).
package limits

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/services/fault"
)

// Name is the stable name of a limit: its JSON field, the suffix of its
// environment variable and the limit of a limit-exceeded problem.
type Name string

// The limits.
const (
	APIs                Name = "apis"
	Routes              Name = "routes"
	Upstreams           Name = "upstreams"
	TargetsPerUpstream  Name = "targets_per_upstream"
	Targets             Name = "targets"
	Plans               Name = "plans"
	Consumers           Name = "consumers"
	Keys                Name = "keys"
	AppsPerDeveloper    Name = "apps_per_developer"
	SubscriptionsPerApp Name = "subscriptions_per_app"
	KeysPerSubscription Name = "keys_per_subscription"
	Domains             Name = "domains"
	MinHealthIntervalMS Name = "min_health_interval_ms"
	ConfigBytes         Name = "config_bytes"
)

// Defaults of the limits (see the package comment for their sizing).
const (
	DefaultAPIs                = 100
	DefaultRoutes              = 2000
	DefaultUpstreams           = 100
	DefaultTargetsPerUpstream  = 64
	DefaultTargets             = 500
	DefaultPlans               = 100
	DefaultConsumers           = 100_000
	DefaultKeys                = 100_000
	DefaultAppsPerDeveloper    = 25
	DefaultSubscriptionsPerApp = 20
	DefaultKeysPerSubscription = 10
	DefaultDomains             = 20
	DefaultMinHealthIntervalMS = 1000
	DefaultConfigBytes         = 256 << 10
)

// MaxValue bounds every limit (and override): far above anything one
// deployment holds, and small enough that counts never overflow.
const MaxValue = 1 << 40

// Limits are the limits of one tenant (or the operator's defaults for every
// tenant). Each count limit is the most allowed; 0 allows none.
type Limits struct {
	// APIs is the most APIs of the tenant.
	APIs int64 `json:"apis"`
	// Routes is the most routes of the tenant: operations imported from the
	// OpenAPI documents of all its APIs together.
	Routes int64 `json:"routes"`
	// Upstreams is the most upstreams.
	Upstreams int64 `json:"upstreams"`
	// TargetsPerUpstream is the most targets of one upstream.
	TargetsPerUpstream int64 `json:"targets_per_upstream"`
	// Targets is the most targets of all the tenant's upstreams together.
	Targets int64 `json:"targets"`
	// Plans is the most plans.
	Plans int64 `json:"plans"`
	// Consumers is the most consumers, developers of its portal included.
	Consumers int64 `json:"consumers"`
	// Keys is the most working API keys (not revoked, not expired).
	Keys int64 `json:"keys"`
	// AppsPerDeveloper is the most apps of one consumer (developer).
	AppsPerDeveloper int64 `json:"apps_per_developer"`
	// SubscriptionsPerApp is the most live subscriptions of one app.
	SubscriptionsPerApp int64 `json:"subscriptions_per_app"`
	// KeysPerSubscription is the most working keys of one subscription.
	KeysPerSubscription int64 `json:"keys_per_subscription"`
	// Domains is the most custom domains, verified or not.
	Domains int64 `json:"domains"`
	// MinHealthIntervalMS is the shortest active health-check interval an
	// upstream may ask for, in milliseconds (a lower bound; 0 leaves only
	// the catalog's own minimum of 100 ms). It bounds the probes a tenant
	// can aim at a target from every worker.
	MinHealthIntervalMS int64 `json:"min_health_interval_ms"`
	// ConfigBytes is the most bytes of the tenant's compiled config (its
	// JSON in the snapshot, see publish.TenantConfigBytes).
	ConfigBytes int64 `json:"config_bytes"`
}

// Def describes one limit.
type Def struct {
	Name    Name
	Default int64
	// Label names the limit for people ("APIs").
	Label string
	// Owner is who the limit counts for, in messages ("a tenant",
	// "an upstream").
	Owner string
	// Noun is what it counts, in messages ("APIs").
	Noun string
	// Lower marks a lower bound (a minimum) instead of a most.
	Lower bool
	// PerParent marks a limit counted per object (upstream, developer,
	// app, subscription); its usage is that of the fullest one.
	PerParent bool
	field     func(*Limits) *int64
}

var defs = []Def{
	{Name: APIs, Default: DefaultAPIs, Label: "APIs", Owner: "a tenant", Noun: "APIs",
		field: func(l *Limits) *int64 { return &l.APIs }},
	{Name: Routes, Default: DefaultRoutes, Label: "Routes (imported operations)", Owner: "a tenant",
		Noun:  "routes (operations imported from OpenAPI documents, all APIs together)",
		field: func(l *Limits) *int64 { return &l.Routes }},
	{Name: Upstreams, Default: DefaultUpstreams, Label: "Upstreams", Owner: "a tenant", Noun: "upstreams",
		field: func(l *Limits) *int64 { return &l.Upstreams }},
	{Name: TargetsPerUpstream, Default: DefaultTargetsPerUpstream, Label: "Targets per upstream", Owner: "an upstream",
		Noun: "targets", PerParent: true, field: func(l *Limits) *int64 { return &l.TargetsPerUpstream }},
	{Name: Targets, Default: DefaultTargets, Label: "Targets (all upstreams)", Owner: "a tenant",
		Noun: "targets across all its upstreams", field: func(l *Limits) *int64 { return &l.Targets }},
	{Name: Plans, Default: DefaultPlans, Label: "Plans", Owner: "a tenant", Noun: "plans",
		field: func(l *Limits) *int64 { return &l.Plans }},
	{Name: Consumers, Default: DefaultConsumers, Label: "Consumers", Owner: "a tenant",
		Noun: "consumers (developers included)", field: func(l *Limits) *int64 { return &l.Consumers }},
	{Name: Keys, Default: DefaultKeys, Label: "Working API keys", Owner: "a tenant", Noun: "working API keys",
		field: func(l *Limits) *int64 { return &l.Keys }},
	{Name: AppsPerDeveloper, Default: DefaultAppsPerDeveloper, Label: "Apps per developer", Owner: "a developer",
		Noun: "apps", PerParent: true, field: func(l *Limits) *int64 { return &l.AppsPerDeveloper }},
	{Name: SubscriptionsPerApp, Default: DefaultSubscriptionsPerApp, Label: "Subscriptions per app", Owner: "an app",
		Noun: "subscriptions", PerParent: true, field: func(l *Limits) *int64 { return &l.SubscriptionsPerApp }},
	{Name: KeysPerSubscription, Default: DefaultKeysPerSubscription, Label: "Keys per subscription",
		Owner: "a subscription", Noun: "working keys", PerParent: true,
		field: func(l *Limits) *int64 { return &l.KeysPerSubscription }},
	{Name: Domains, Default: DefaultDomains, Label: "Custom domains", Owner: "a tenant",
		Noun: "custom domains (verified or not)", field: func(l *Limits) *int64 { return &l.Domains }},
	{Name: MinHealthIntervalMS, Default: DefaultMinHealthIntervalMS, Label: "Shortest health-check interval (ms)",
		Owner: "a tenant", Noun: "ms between health checks", Lower: true,
		field: func(l *Limits) *int64 { return &l.MinHealthIntervalMS }},
	{Name: ConfigBytes, Default: DefaultConfigBytes, Label: "Compiled config size (bytes)", Owner: "a tenant",
		Noun: "bytes of compiled gateway config", field: func(l *Limits) *int64 { return &l.ConfigBytes }},
}

// Env is the operator's environment variable of the limit's default:
// TOLLGATE_LIMIT_ and the name in capitals.
func (d Def) Env() string { return "TOLLGATE_LIMIT_" + strings.ToUpper(string(d.Name)) }

// Defs lists every limit, in a stable order (the order of the portal's card).
func Defs() []Def { return append([]Def(nil), defs...) }

// Lookup returns the definition of the limit named n.
func Lookup(n Name) (Def, bool) {
	for _, d := range defs {
		if d.Name == n {
			return d, true
		}
	}
	return Def{}, false
}

// Defaults returns the built-in defaults.
func Defaults() Limits {
	var l Limits
	for _, d := range defs {
		*d.field(&l) = d.Default
	}
	return l
}

// Get returns the value of the limit n (0 for an unknown name).
func (l Limits) Get(n Name) int64 {
	if d, ok := Lookup(n); ok {
		return *d.field(&l)
	}
	return 0
}

// FromEnv returns the defaults with every TOLLGATE_LIMIT_<NAME> variable
// that is set (for example TOLLGATE_LIMIT_APIS=500,
// TOLLGATE_LIMIT_CONFIG_BYTES=1048576, TOLLGATE_LIMIT_MIN_HEALTH_INTERVAL_MS=5000).
// Values are whole numbers from 0 to MaxValue; underscores may group digits.
func FromEnv(getenv func(string) string) (Limits, error) {
	l := Defaults()
	for _, d := range defs {
		raw := strings.TrimSpace(getenv(d.Env()))
		if raw == "" {
			continue
		}
		v, err := strconv.ParseInt(strings.ReplaceAll(raw, "_", ""), 10, 64)
		if err != nil || v < 0 || v > MaxValue {
			return Limits{}, fmt.Errorf("%s=%q: must be a whole number from 0 to %d", d.Env(), raw, int64(MaxValue))
		}
		*d.field(&l) = v
	}
	return l, nil
}

// Override holds a tenant's own values of some limits; the others take the
// operator's defaults.
type Override map[Name]int64

// Validate reports unknown names and values out of range as a
// ValidationError whose fields are the limits' names.
func (o Override) Validate() error {
	v := &fault.ValidationError{}
	for n, val := range o {
		if _, ok := Lookup(n); !ok {
			v.Add(string(n), "is not a limit")
			continue
		}
		if val < 0 || val > MaxValue {
			v.Add(string(n), "must be between 0 and %d", int64(MaxValue))
		}
	}
	return v.Err()
}

// With returns l with the override's values.
func (l Limits) With(o Override) Limits {
	for _, d := range defs {
		if v, ok := o[d.Name]; ok {
			*d.field(&l) = v
		}
	}
	return l
}

// Check returns a *fault.LimitError when having `would` of what the limit n
// counts goes past it (for a lower bound: when `would` is below it). field
// names the input field to show the error next to ("" for none).
func (l Limits) Check(n Name, would int64, field string) error {
	d, ok := Lookup(n)
	if !ok {
		return fmt.Errorf("limits: unknown limit %q", n)
	}
	max := *d.field(&l)
	if (!d.Lower && would <= max) || (d.Lower && would >= max) {
		return nil
	}
	return &fault.LimitError{Limit: string(n), Max: max, Value: would, Lower: d.Lower, Field: field, Message: message(d, max, would)}
}

func message(d Def, max, would int64) string {
	const raise = "; ask the platform operator to raise the limit"
	switch {
	case d.Name == ConfigBytes:
		return fmt.Sprintf("the tenant's compiled gateway config would be %d bytes; at most %d are allowed (limit %s): "+
			"remove or shrink APIs, routes, upstreams or plans%s", would, max, d.Name, raise)
	case d.Name == MinHealthIntervalMS:
		return fmt.Sprintf("health checks may run at most every %d ms on this platform (limit %s); %d ms is too often",
			max, d.Name, would)
	case max == 0:
		return fmt.Sprintf("%s may not have %s (limit %s is 0)%s", d.Owner, d.Noun, d.Name, raise)
	}
	return fmt.Sprintf("%s may have at most %d %s (limit %s); this would make %d: remove some first%s",
		d.Owner, max, d.Noun, d.Name, would, raise)
}
