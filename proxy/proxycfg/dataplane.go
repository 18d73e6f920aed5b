package proxycfg

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Balancing algorithms added after round_robin and weighted (see Upstream).
const (
	// AlgorithmLeastConn is power of two random choices scored by in-flight
	// requests times the latency EWMA of each target.
	AlgorithmLeastConn = "least_conn"
	// AlgorithmConsistentHash maps a request key (Upstream.HashOn) to a
	// target on a hash ring with bounded load.
	AlgorithmConsistentHash = "consistent_hash"
	// AlgorithmRandom picks a healthy target uniformly (weights respected).
	AlgorithmRandom = "random"
)

// Algorithms lists every balancing algorithm a worker knows.
var Algorithms = []string{AlgorithmRoundRobin, AlgorithmWeighted, AlgorithmLeastConn, AlgorithmConsistentHash, AlgorithmRandom}

// Sources of the consistent-hash key.
const (
	HashOnHeader   = "header"
	HashOnCookie   = "cookie"
	HashOnClientIP = "client_ip"
	HashOnConsumer = "consumer"
)

// HashOn says what consistent hashing keys on. A request without the key
// (no such header or cookie, no consumer) is balanced as round robin.
type HashOn struct {
	// Source is header, cookie, client_ip or consumer.
	Source string `json:"source"`
	// Name is the header or cookie name (Source header or cookie).
	Name string `json:"name,omitempty"`
	// BoundedLoad caps a target's in-flight requests at BoundedLoad times
	// the average, so one hot key cannot melt one target (consistent
	// hashing with bounded loads); 0 means 1.25, values below 1 are invalid.
	BoundedLoad float64 `json:"bounded_load,omitempty"`
}

// Outlier is passive health checking: a target that fails in a row is
// ejected for BaseEjectionMS times the number of its ejections so far
// (capped at MaxEjectionMS), then comes back on probation. A zero Outlier
// turns passive checks off.
type Outlier struct {
	// Consecutive5xx ejects after this many 5xx answers in a row; 0 off.
	Consecutive5xx int `json:"consecutive_5xx,omitempty"`
	// ConsecutiveErrors ejects after this many connect errors or timeouts
	// in a row; 0 off.
	ConsecutiveErrors int `json:"consecutive_errors,omitempty"`
	// BaseEjectionMS is the first ejection's length; 0 means 5000.
	BaseEjectionMS int `json:"base_ejection_ms,omitempty"`
	// MaxEjectionMS caps an ejection's length; 0 means 300000.
	MaxEjectionMS int `json:"max_ejection_ms,omitempty"`
	// MaxEjectionPercent is the largest share of an upstream's targets
	// ejected at once; 0 means 50. At least one target is always ejectable
	// when the upstream has two or more.
	MaxEjectionPercent int `json:"max_ejection_percent,omitempty"`
}

// Enabled reports whether passive checks are on.
func (o Outlier) Enabled() bool { return o.Consecutive5xx > 0 || o.ConsecutiveErrors > 0 }

// Retry retries a failed exchange on another target. Only idempotent
// methods (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) and requests carrying an
// Idempotency-Key header are retried, and only when the failure happened
// before the upstream could have acted (connect error) or, for idempotent
// requests, on a 502/503/504 or timeout. A zero Retry means no retries.
type Retry struct {
	// Attempts is the number of retries after the first try (0 off, max 5).
	Attempts int `json:"attempts,omitempty"`
	// BudgetPercent caps retries at this share of the upstream's requests
	// over the last ten seconds, so retries cannot multiply an outage;
	// 0 means 20.
	BudgetPercent int `json:"budget_percent,omitempty"`
	// MinPerSecond are retries always allowed per second whatever the
	// budget, so that a quiet upstream can retry at all; 0 means 3.
	MinPerSecond int `json:"min_per_second,omitempty"`
}

// CircuitBreaker bounds the load on each target: beyond MaxRequests in
// flight a target is skipped (and if every target is full the request
// fails fast with 503 instead of queueing). 0 means no bound.
type CircuitBreaker struct {
	MaxRequests int `json:"max_requests,omitempty"`
}

// JWT configures an API whose Auth is "jwt". Workers discover the issuer
// (OpenID Connect discovery), verify tokens against its JWKS (cached,
// refetched on an unknown kid), and map one claim to a consumer and plan:
// a value listed in Subjects gets that consumer and plan, any other value
// gets PlanID (and the claim value as consumer), or 403 without PlanID.
type JWT struct {
	// Issuer is the issuer URL; discovery reads
	// Issuer + "/.well-known/openid-configuration".
	Issuer string `json:"issuer"`
	// Audiences lists the accepted "aud" values; a token must carry one.
	Audiences []string `json:"audiences"`
	// Claim names the claim identifying the caller: "sub" (default),
	// "client_id", or any other string claim.
	Claim string `json:"claim,omitempty"`
	// Algorithms is the allow-list of signing algorithms; empty means
	// RS256. "none" and the HMAC algorithms are never accepted.
	Algorithms []string `json:"algorithms,omitempty"`
	// PlanID is the plan of callers not listed in Subjects; empty means
	// such callers are refused (403).
	PlanID string `json:"plan_id,omitempty"`
	// Subjects map claim values to consumers and plans.
	Subjects []JWTSubject `json:"subjects,omitempty"`
	// Scopes are required on every request ("scope" or "scp" claim).
	Scopes []string `json:"scopes,omitempty"`
	// RouteScopes add required scopes on some routes.
	RouteScopes []RouteScopes `json:"route_scopes,omitempty"`
}

// JWTSubject maps one claim value to a consumer and a plan. ConsumerID
// must name a consumer of the API's own tenant: the snapshot holds no
// consumers, so workers cannot check it and the control plane must (a
// worker still counts the caller's usage and limits under the API's
// tenant, never another's).
type JWTSubject struct {
	Value      string `json:"value"`
	ConsumerID string `json:"consumer_id"`
	PlanID     string `json:"plan_id"`
}

// RouteScopes requires Scopes on requests whose path (after the API's base
// path) is under PathPrefix and whose method is in Methods (empty: any).
// The path is compared decoded and segment by segment, ignoring ASCII case
// and path parameters (";..."), so that "/admin" covers "/admin",
// "/admin/x", "/ADMIN/x" and "/admin;v=1/x", but not "/administrator".
type RouteScopes struct {
	PathPrefix string   `json:"path_prefix"`
	Methods    []string `json:"methods,omitempty"`
	Scopes     []string `json:"scopes"`
}

// JWTAlgorithms are the signing algorithms an API may allow.
var JWTAlgorithms = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"}

// Host header handling of an API.
const (
	// HostTarget sends the target's host (the default).
	HostTarget = ""
	// HostPreserve passes the client's Host header through.
	HostPreserve = "preserve"
)

// ValidateJWT checks a JWT configuration. plans are the tenant's plan ids.
func ValidateJWT(j *JWT, plans map[string]bool) error {
	if j == nil {
		return errors.New("jwt settings required for auth jwt")
	}
	u, err := url.Parse(j.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("jwt issuer %q is not an http(s) URL", j.Issuer)
	}
	if len(j.Audiences) == 0 {
		return errors.New("jwt audiences required")
	}
	for _, a := range j.Audiences {
		if a == "" {
			return errors.New("jwt audience empty")
		}
	}
	for _, a := range j.Algorithms {
		if !slices.Contains(JWTAlgorithms, a) {
			return fmt.Errorf("jwt algorithm %q not allowed", a)
		}
	}
	if j.PlanID != "" && plans != nil && !plans[j.PlanID] {
		return fmt.Errorf("jwt plan %q unknown", j.PlanID)
	}
	seen := map[string]bool{}
	for _, s := range j.Subjects {
		if s.Value == "" || seen[s.Value] {
			return fmt.Errorf("jwt subject %q empty or duplicate", s.Value)
		}
		seen[s.Value] = true
		if s.PlanID == "" || (plans != nil && !plans[s.PlanID]) {
			return fmt.Errorf("jwt subject %q: unknown plan %q", s.Value, s.PlanID)
		}
	}
	for _, r := range j.RouteScopes {
		if !strings.HasPrefix(r.PathPrefix, "/") {
			return fmt.Errorf("jwt route scopes: path prefix %q must start with /", r.PathPrefix)
		}
		if len(r.Scopes) == 0 {
			return fmt.Errorf("jwt route scopes %q: no scopes", r.PathPrefix)
		}
	}
	return nil
}

// ValidateBalancing checks the balancing, passive health, retry and
// breaker settings of an upstream.
func ValidateBalancing(u *Upstream) error {
	if !slices.Contains(Algorithms, u.Algorithm) {
		return fmt.Errorf("unknown algorithm %q", u.Algorithm)
	}
	if u.Algorithm == AlgorithmConsistentHash {
		if u.HashOn == nil {
			return errors.New("consistent_hash needs hash_on")
		}
		switch u.HashOn.Source {
		case HashOnHeader, HashOnCookie:
			if u.HashOn.Name == "" {
				return fmt.Errorf("hash_on %s needs a name", u.HashOn.Source)
			}
		case HashOnClientIP, HashOnConsumer:
		default:
			return fmt.Errorf("unknown hash_on source %q", u.HashOn.Source)
		}
		if u.HashOn.BoundedLoad != 0 && u.HashOn.BoundedLoad < 1 {
			return fmt.Errorf("hash_on bounded_load %v below 1", u.HashOn.BoundedLoad)
		}
	}
	o := u.Outlier
	if o.Consecutive5xx < 0 || o.ConsecutiveErrors < 0 || o.BaseEjectionMS < 0 || o.MaxEjectionMS < 0 ||
		o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100 {
		return errors.New("bad outlier settings")
	}
	r := u.Retry
	if r.Attempts < 0 || r.Attempts > 5 || r.BudgetPercent < 0 || r.BudgetPercent > 100 || r.MinPerSecond < 0 {
		return errors.New("bad retry settings (attempts 0..5, budget_percent 0..100)")
	}
	if u.CircuitBreaker.MaxRequests < 0 {
		return errors.New("bad circuit breaker settings")
	}
	return nil
}

// validateAPIDataplane checks an API's data-plane fields.
func validateAPIDataplane(a *API, plans map[string]bool) error {
	// An API with auth jwt and no settings is valid and refuses every
	// request (401), as before JWT settings existed.
	if a.Auth == AuthJWT && a.JWT != nil {
		if err := ValidateJWT(a.JWT, plans); err != nil {
			return err
		}
	}
	if a.MaxBodyBytes < 0 {
		return errors.New("negative max_body_bytes")
	}
	if a.ConnectTimeoutMS < 0 || a.ReadTimeoutMS < 0 {
		return errors.New("negative timeout")
	}
	switch a.Host {
	case HostTarget, HostPreserve:
	default:
		if strings.ContainsAny(a.Host, " /\r\n\t") {
			return fmt.Errorf("bad host rewrite %q", a.Host)
		}
	}
	return nil
}
