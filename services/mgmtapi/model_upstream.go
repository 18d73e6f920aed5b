package mgmtapi

import (
	"time"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/catalog"
)

// UpstreamRequest creates an upstream (POST /v1/upstreams); PATCH merges
// the fields it names into the upstream's current ones.
type UpstreamRequest struct {
	Name      string   `json:"name" doc:"unique name in the tenant" maxLength:"200"`
	Algorithm string   `json:"algorithm" enum:"round_robin,weighted,least_conn,consistent_hash,random" default:"round_robin"`
	Targets   []Target `json:"targets" doc:"the backend addresses; at least one" minItems:"1"`
	// HealthCheck nil means every target is taken as healthy.
	HealthCheck    *HealthCheck    `json:"health_check" doc:"active health check; null: every target is taken as healthy"`
	HashOn         *HashOn         `json:"hash_on,omitempty"`
	Outlier        *Outlier        `json:"outlier,omitempty"`
	Retry          *Retry          `json:"retry,omitempty"`
	CircuitBreaker *CircuitBreaker `json:"circuit_breaker,omitempty"`
}

func (UpstreamRequest) schemaDoc() string {
	return "What a caller sets on an upstream: a pool of backend targets and how traffic is spread over them."
}

// Upstream is a stored upstream.
type Upstream struct {
	ID             string          `json:"id" format:"uuid"`
	Name           string          `json:"name"`
	Algorithm      string          `json:"algorithm" enum:"round_robin,weighted,least_conn,consistent_hash,random"`
	Targets        []Target        `json:"targets"`
	HealthCheck    *HealthCheck    `json:"health_check" doc:"active health check; null: every target is taken as healthy"`
	HashOn         *HashOn         `json:"hash_on,omitempty"`
	Outlier        *Outlier        `json:"outlier,omitempty"`
	Retry          *Retry          `json:"retry,omitempty"`
	CircuitBreaker *CircuitBreaker `json:"circuit_breaker,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
}

func (Upstream) schemaDoc() string { return "A pool of backend targets that APIs send traffic to." }

// Target is one backend address of an upstream.
type Target struct {
	URL    string `json:"url" format:"uri" required:"true" doc:"http(s)://host[:port][/path]; https only unless the operator allows private upstreams"`
	Weight *int   `json:"weight,omitempty" min:"1" max:"1000" default:"1" doc:"relative share of traffic under weighted balancing"`
}

func (Target) schemaDoc() string { return "One backend address of an upstream." }

// HealthCheck is an upstream's active health check.
type HealthCheck struct {
	Path               string `json:"path" default:"/" doc:"probed with GET"`
	IntervalMS         int    `json:"interval_ms" default:"10000" doc:"between probes; at least the tenant's limit min_health_interval_ms"`
	TimeoutMS          int    `json:"timeout_ms" default:"2000" doc:"of one probe, at most interval_ms"`
	HealthyThreshold   int    `json:"healthy_threshold" default:"2" min:"1" max:"100" doc:"successes in a row that make a target healthy"`
	UnhealthyThreshold int    `json:"unhealthy_threshold" default:"3" min:"1" max:"100" doc:"failures in a row that make a target unhealthy"`
	ExpectedStatus     int    `json:"expected_status" doc:"the status of a healthy answer; 0: any 2xx or 3xx"`
}

func (HealthCheck) schemaDoc() string {
	return "The active health check of an upstream's targets; zero fields take their defaults."
}

// HashOn is the key of consistent_hash balancing.
type HashOn struct {
	Source      string  `json:"source" enum:"header,cookie,client_ip,consumer"`
	Name        string  `json:"name,omitempty" doc:"header or cookie name"`
	BoundedLoad float64 `json:"bounded_load,omitempty" min:"1" max:"10" default:"1.25" doc:"a target takes at most bounded_load x the average in-flight requests"`
}

func (HashOn) schemaDoc() string {
	return "consistent_hash only: what to hash, with bounded load."
}

// Outlier is passive health checking.
type Outlier struct {
	Consecutive5xx     int `json:"consecutive_5xx,omitempty" min:"0" doc:"5xx answers in a row that eject a target; 0: off"`
	ConsecutiveErrors  int `json:"consecutive_errors,omitempty" min:"0" doc:"connect errors or timeouts in a row that eject a target; 0: off"`
	BaseEjectionMS     int `json:"base_ejection_ms,omitempty" min:"0" default:"5000" doc:"the first ejection's length"`
	MaxEjectionMS      int `json:"max_ejection_ms,omitempty" min:"0" default:"300000" doc:"the longest ejection"`
	MaxEjectionPercent int `json:"max_ejection_percent,omitempty" min:"0" max:"100" default:"50" doc:"the largest share of the targets ejected at once"`
}

func (Outlier) schemaDoc() string {
	return "Passive health: consecutive 5xx or connect errors eject a target for base_ejection_ms x (number of its ejections), capped; never more than max_ejection_percent of the targets."
}

// Retry retries idempotent requests on another target.
type Retry struct {
	Attempts      int `json:"attempts,omitempty" min:"0" max:"5" doc:"retries after the first try"`
	BudgetPercent int `json:"budget_percent,omitempty" min:"0" max:"100" default:"20" doc:"retries at most this share of the upstream's requests"`
	MinPerSecond  int `json:"min_per_second,omitempty" min:"0" default:"3" doc:"retries always allowed per second"`
}

func (Retry) schemaDoc() string {
	return "Retry idempotent requests (or those with Idempotency-Key) on another target after a connect error, timeout, 502, 503 or 504, within a retry budget."
}

// CircuitBreaker caps in-flight requests per target.
type CircuitBreaker struct {
	MaxRequests int `json:"max_requests,omitempty" min:"0" doc:"0: no cap"`
}

func (CircuitBreaker) schemaDoc() string {
	return "Per-target cap on in-flight requests; a full target is skipped, all full answers 503."
}

// input maps the request to the catalog's input.
func (r UpstreamRequest) input() catalog.UpstreamInput {
	in := catalog.UpstreamInput{Name: r.Name, Algorithm: r.Algorithm, HealthCheck: r.HealthCheck.domain()}
	in.Targets = mapSlice(r.Targets, func(t Target) catalog.Target {
		return catalog.Target{URL: t.URL, Weight: clonePtr(t.Weight)}
	})
	if h := r.HashOn; h != nil {
		in.HashOn = &proxycfg.HashOn{Source: h.Source, Name: h.Name, BoundedLoad: h.BoundedLoad}
	}
	if o := r.Outlier; o != nil {
		in.Outlier = &proxycfg.Outlier{Consecutive5xx: o.Consecutive5xx, ConsecutiveErrors: o.ConsecutiveErrors,
			BaseEjectionMS: o.BaseEjectionMS, MaxEjectionMS: o.MaxEjectionMS, MaxEjectionPercent: o.MaxEjectionPercent}
	}
	if rt := r.Retry; rt != nil {
		in.Retry = &proxycfg.Retry{Attempts: rt.Attempts, BudgetPercent: rt.BudgetPercent, MinPerSecond: rt.MinPerSecond}
	}
	if c := r.CircuitBreaker; c != nil {
		in.CircuitBreaker = &proxycfg.CircuitBreaker{MaxRequests: c.MaxRequests}
	}
	return in
}

// upstreamRequestOf maps the catalog's input back to a request, for PATCH.
func upstreamRequestOf(in catalog.UpstreamInput) UpstreamRequest {
	return UpstreamRequest{Name: in.Name, Algorithm: in.Algorithm, Targets: targetsOf(in.Targets),
		HealthCheck: healthCheckOf(in.HealthCheck), HashOn: hashOnOf(in.HashOn), Outlier: outlierOf(in.Outlier),
		Retry: retryOf(in.Retry), CircuitBreaker: circuitBreakerOf(in.CircuitBreaker)}
}

// upstreamOf maps a stored upstream to its answer.
func upstreamOf(u catalog.Upstream) Upstream {
	return Upstream{ID: u.ID, Name: u.Name, Algorithm: u.Algorithm, Targets: targetsOf(u.Targets),
		HealthCheck: healthCheckOf(u.HealthCheck), HashOn: hashOnOf(u.HashOn), Outlier: outlierOf(u.Outlier),
		Retry: retryOf(u.Retry), CircuitBreaker: circuitBreakerOf(u.CircuitBreaker),
		CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

func targetsOf(ts []catalog.Target) []Target {
	return mapSlice(ts, func(t catalog.Target) Target { return Target{URL: t.URL, Weight: clonePtr(t.Weight)} })
}

func (h *HealthCheck) domain() *catalog.HealthCheck {
	if h == nil {
		return nil
	}
	return &catalog.HealthCheck{Path: h.Path, IntervalMS: h.IntervalMS, TimeoutMS: h.TimeoutMS,
		HealthyThreshold: h.HealthyThreshold, UnhealthyThreshold: h.UnhealthyThreshold, ExpectedStatus: h.ExpectedStatus}
}

func healthCheckOf(h *catalog.HealthCheck) *HealthCheck {
	if h == nil {
		return nil
	}
	return &HealthCheck{Path: h.Path, IntervalMS: h.IntervalMS, TimeoutMS: h.TimeoutMS,
		HealthyThreshold: h.HealthyThreshold, UnhealthyThreshold: h.UnhealthyThreshold, ExpectedStatus: h.ExpectedStatus}
}

func hashOnOf(h *proxycfg.HashOn) *HashOn {
	if h == nil {
		return nil
	}
	return &HashOn{Source: h.Source, Name: h.Name, BoundedLoad: h.BoundedLoad}
}

func outlierOf(o *proxycfg.Outlier) *Outlier {
	if o == nil {
		return nil
	}
	return &Outlier{Consecutive5xx: o.Consecutive5xx, ConsecutiveErrors: o.ConsecutiveErrors,
		BaseEjectionMS: o.BaseEjectionMS, MaxEjectionMS: o.MaxEjectionMS, MaxEjectionPercent: o.MaxEjectionPercent}
}

func retryOf(r *proxycfg.Retry) *Retry {
	if r == nil {
		return nil
	}
	return &Retry{Attempts: r.Attempts, BudgetPercent: r.BudgetPercent, MinPerSecond: r.MinPerSecond}
}

func circuitBreakerOf(c *proxycfg.CircuitBreaker) *CircuitBreaker {
	if c == nil {
		return nil
	}
	return &CircuitBreaker{MaxRequests: c.MaxRequests}
}
