// Package proxycfg is the one contract between the control plane and the data
// plane: the compiled configuration (an index and one shard per tenant), the
// API key record, the Redis key layout both sides use, and the key digest
// function.
//
// It imports the standard library only. The control plane imports it to compile
// and publish; the proxy workers import it to load and run. Nothing else crosses.
//
// The contract is versioned by one integer, CapabilityVersion (capability.go),
// that moves with every change of meaning, as Tailscale's tailcfg does it:
// workers say which version they speak (ConfigWorkerBeat), every shard says
// the lowest version that can enforce it (Shard.Capability, from the
// features its tenant uses: Tenant.Capability), shards are decoded strictly
// (DecodeShard: a field a worker does not know is an error, never ignored),
// and a worker never serves a shard that needs a newer version. The history
// of the version is in capability.go.
package proxycfg

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// SchemaVersion is the name CapabilityVersion had while the contract was one
// snapshot.
//
// Deprecated: use CapabilityVersion.
const SchemaVersion = CapabilityVersion

// Snapshot is the whole compiled configuration of the platform at one
// moment: what the index and its shards describe together. It is no longer
// stored as one blob (workers and the publisher move shards, see Shard and
// IndexEntry); tools and tests still describe a whole platform with it, and
// a worker reads the one a version before shards left on its disk.
type Snapshot struct {
	// Schema is the capability version the snapshot was written for
	// (1..CapabilityVersion; each tenant's shard still says what it needs).
	Schema int `json:"schema"`
	// Generation increases by at least one with every committed change; as
	// the shards of a whole snapshot, it is the index sequence and every
	// tenant's shard generation.
	Generation int64 `json:"generation"`
	// DigestVersion says which key digests API keys (DigestKey): 0, the raw
	// TOLLGATE_SECRET (installations from before key derivation), or 1, a
	// key derived from it. A worker given the secret follows it; a worker
	// given only the digest key ignores it.
	DigestVersion int `json:"digest_version,omitempty"`
	// CompiledAt is when the control plane built the snapshot.
	CompiledAt time.Time `json:"compiled_at"`
	// Tenants are all active tenants, each with its own objects.
	Tenants []Tenant `json:"tenants"`
}

// Tenant is one company's compiled configuration.
type Tenant struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
	// Domains are extra verified host names (custom domains) for this tenant.
	// The tenant is always also served at <slug>.<proxy domain>.
	Domains   []string   `json:"domains,omitempty"`
	Upstreams []Upstream `json:"upstreams"`
	APIs      []API      `json:"apis"`
	Plans     []Plan     `json:"plans"`
}

// Balancing algorithms of an upstream.
const (
	AlgorithmRoundRobin = "round_robin"
	AlgorithmWeighted   = "weighted"
)

// Upstream is a pool of backend targets that APIs send traffic to.
type Upstream struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Algorithm   string      `json:"algorithm"`
	Targets     []Target    `json:"targets"`
	HealthCheck HealthCheck `json:"health_check"`
	// HashOn is the key of consistent_hash balancing (nil otherwise).
	HashOn *HashOn `json:"hash_on,omitempty"`
	// Outlier is passive health checking; zero is off.
	Outlier Outlier `json:"outlier,omitzero"`
	// Retry retries failed exchanges on another target; zero is off.
	Retry Retry `json:"retry,omitzero"`
	// CircuitBreaker bounds in-flight requests per target; zero is off.
	CircuitBreaker CircuitBreaker `json:"circuit_breaker,omitzero"`
}

// Target is one backend address of an upstream.
type Target struct {
	// URL is scheme://host[:port][/path]; the scheme is http or https.
	URL string `json:"url"`
	// Weight is the relative share of traffic for weighted balancing (>= 1).
	Weight int `json:"weight"`
}

// HealthCheck is the active health check of an upstream's targets. A zero
// IntervalMS means no active check: every target is taken as healthy.
type HealthCheck struct {
	Path               string `json:"path,omitempty"`
	IntervalMS         int    `json:"interval_ms,omitempty"`
	TimeoutMS          int    `json:"timeout_ms,omitempty"`
	HealthyThreshold   int    `json:"healthy_threshold,omitempty"`
	UnhealthyThreshold int    `json:"unhealthy_threshold,omitempty"`
	// ExpectedStatus is the status a healthy target answers; 0 means any 2xx or 3xx.
	ExpectedStatus int `json:"expected_status,omitempty"`
}

// Authentication modes of an API.
const (
	AuthKey  = "key"
	AuthJWT  = "jwt"
	AuthNone = "none"
)

// API is a tenant's HTTP API, served under BasePath on the tenant's hosts.
type API struct {
	ID         string `json:"id"`
	Slug       string `json:"slug"`
	Name       string `json:"name"`
	BasePath   string `json:"base_path"`
	UpstreamID string `json:"upstream_id"`
	Auth       string `json:"auth"`
	// StripBasePath removes BasePath from the path before forwarding.
	StripBasePath bool `json:"strip_base_path"`
	// TimeoutMS bounds the whole upstream exchange; 0 means the worker default.
	TimeoutMS int `json:"timeout_ms,omitempty"`
	// ConnectTimeoutMS bounds connecting to a target; 0 means the worker
	// default (5s).
	ConnectTimeoutMS int `json:"connect_timeout_ms,omitempty"`
	// ReadTimeoutMS bounds reading the upstream's response (headers and
	// body) once the request is sent; 0 means TimeoutMS only.
	ReadTimeoutMS int `json:"read_timeout_ms,omitempty"`
	// MaxBodyBytes caps request bodies (413 beyond); 0 means the worker
	// default.
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`
	// Host is the Host header sent upstream: "" the target's host,
	// "preserve" the client's, anything else that host name.
	Host string `json:"host,omitempty"`
	// JWT configures auth "jwt" (nil otherwise).
	JWT *JWT `json:"jwt,omitempty"`
	// RateLimit is a ceiling on all traffic of the API together, whatever
	// the plans of its callers add up to; Requests 0 means none. Scope
	// does not apply.
	RateLimit RateLimit `json:"rate_limit,omitzero"`
	// Routes, when not empty, are the only operations the API serves (see
	// Route); empty means every method and path under BasePath.
	Routes []Route `json:"routes,omitempty"`
}

// Plan is a set of limits a key is issued under.
type Plan struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	RateLimit RateLimit `json:"rate_limit"`
	Quota     Quota     `json:"quota"`
	// APIIDs are the APIs a key of this plan may call.
	APIIDs []string `json:"api_ids"`
	// Concurrency is the most requests of one limit subject (the key or
	// its subscription, or the consumer, by RateLimit.Scope; see
	// LimitSubject) in flight at once across all workers; 0 means no limit.
	Concurrency int64 `json:"concurrency,omitempty"`
}

// RateLimit allows Requests per PerSeconds. Zero Requests means unlimited.
// The window slides: no interval of PerSeconds admits more than Requests.
type RateLimit struct {
	Requests   int64 `json:"requests"`
	PerSeconds int64 `json:"per_seconds"`
	// Burst, when > 0 (and < Requests), also caps any interval of
	// PerSeconds*Burst/Requests at Burst requests, spreading the window's
	// allowance instead of letting it go in one spike. 0 means no cap.
	Burst int64 `json:"burst,omitempty"`
	// Scope is whose requests share the limit (and the plan's quota and
	// concurrency): ScopeKey ("" too; all keys of the key's subscription
	// when it has one) or ScopeConsumer (all keys of the consumer under
	// this plan). See LimitSubject.
	Scope string `json:"scope,omitempty"`
}

// Scopes of a rate limit.
const (
	ScopeKey      = "key"
	ScopeConsumer = "consumer"
)

// Validate checks a rate limit's fields.
func (r RateLimit) Validate() error {
	if r.Requests < 0 || (r.Requests > 0 && r.PerSeconds <= 0) || r.PerSeconds < 0 {
		return errors.New("bad rate limit")
	}
	if r.Burst < 0 || (r.Burst > 0 && r.Burst >= r.Requests) {
		return errors.New("burst must be between 0 and requests-1")
	}
	switch r.Scope {
	case "", ScopeKey, ScopeConsumer:
	default:
		return fmt.Errorf("unknown rate limit scope %q", r.Scope)
	}
	return nil
}

// Quota allows Requests per Period ("day" or "month"). Zero Requests means unlimited.
type Quota struct {
	Requests int64  `json:"requests"`
	Period   string `json:"period,omitempty"`
}

// Key statuses. A worker serves KeyActive, and KeyPastDue until the
// record's GraceUntil; it refuses every other status, an unknown (future)
// one with 401 like an unknown key, so that it fails closed.
const (
	// KeyActive keys are served.
	KeyActive = "active"
	// KeyRevoked keys are refused with 401, as if unknown.
	KeyRevoked = "revoked"
	// KeySuspended keys are refused with 403 consumer-suspended: the
	// tenant suspended the consumer (developer) or the subscription.
	KeySuspended = "suspended"
	// KeyCanceled keys are refused with 403 subscription-canceled: the
	// key's subscription is canceled.
	KeyCanceled = "canceled"
	// KeyPastDue keys belong to a subscription with an unpaid invoice:
	// served while now < GraceUntil, then refused with 402
	// payment-required, whose body carries BillingURL.
	KeyPastDue = "past_due"
)

// KeyRecord is what a worker learns about an API key from Redis, looked up by
// the key's digest. Keys are never in the snapshot. A change of the record
// is announced on Keys.KeyChannel; expiry (ExpiresAt, GraceUntil) needs no
// announcement, as workers compare it with their clock on every request.
type KeyRecord struct {
	ID         string `json:"id"`
	TenantID   string `json:"tenant_id"`
	ConsumerID string `json:"consumer_id"`
	PlanID     string `json:"plan_id"`
	Status     string `json:"status"`
	// SubscriptionID is the developer-portal subscription the key belongs
	// to; "" for a key issued outside one. The keys of one subscription
	// share its limits (LimitSubject), so that more keys or a rotation
	// never give more quota.
	SubscriptionID string `json:"subscription_id,omitempty"`
	// ExpiresAt, when not 0, is the Unix second from which the key is
	// refused with 401 as if unknown (the old key of a rotation keeps
	// working until then).
	ExpiresAt int64 `json:"expires_at,omitempty"`
	// GraceUntil is, for status KeyPastDue, the Unix second until which
	// the key is still served; 0 means not at all.
	GraceUntil int64 `json:"grace_until,omitempty"`
	// BillingURL is a stable Tollgate URL where the subscription's
	// payment is fixed; the 402 of a KeyPastDue key carries it as
	// billing_url. Workers never call the payment provider.
	BillingURL string `json:"billing_url,omitempty"`
	// PeriodStart and PeriodEnd (unix seconds) are the subscription's
	// billing period: while now is in it, the plan's quota counts in this
	// period instead of the calendar day or month, so a plan change (same
	// subscription) does not reset it. Zero: calendar periods.
	PeriodStart int64 `json:"period_start,omitempty"`
	PeriodEnd   int64 `json:"period_end,omitempty"`
}

// Digest key versions (Snapshot.DigestVersion).
const (
	DigestRaw     = 0
	DigestDerived = 1
)

// DigestKey is the key of API key digests of an installation of digest
// version v, from its secret: the secret itself for DigestRaw, and
// HKDF-SHA256(secret, info "tollgate/v1/key-digest") for DigestDerived.
// services/secrets derives every other purpose's key the same way.
func DigestKey(secret []byte, v int) ([]byte, error) {
	switch v {
	case DigestRaw:
		return append([]byte(nil), secret...), nil
	case DigestDerived:
		return hkdf.Key(sha256.New, secret, nil, "tollgate/v1/key-digest", 32)
	}
	return nil, fmt.Errorf("unknown digest key version %d", v)
}

// Digest is the HMAC-SHA256 of an API key under the server secret, hex encoded.
// It is the only form in which keys are stored.
func Digest(secret []byte, key string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(key))
	return hex.EncodeToString(m.Sum(nil))
}

// Keys names the Redis keys and channels of the contract. Prefix separates
// deployments (and tests) sharing one Redis; it is empty in production.
//
// On a Redis Cluster, keys that one script, transaction or multi-key
// command touches must share a hash slot, so they share a hash tag ({…}):
// a limit subject's rate-limit window, burst and counter keys and its
// concurrency set (RateLimit, "{tollgate:rl:<subject>}") with its quota
// counters (Quota), every worker's health heartbeat (TargetHealthBeat,
// read with one MGET), the config index with its change log (ConfigIndex,
// ConfigLog: one script updates both) and the workers' config heartbeats
// with their registry (ConfigWorkers, ConfigWorkerBeat). Every other key
// is used alone (each shard, key records, the usage stream, the worker
// registry, a tenant's health hash), so it needs no tag, and the channels
// are classic pub/sub, which a Cluster delivers on every node. A Prefix
// holding a {…} of its own would put every key in one slot: it still
// works, on one node.
type Keys struct {
	Prefix string
}

// Key holds the JSON KeyRecord of the key with this digest.
func (k Keys) Key(digest string) string { return k.Prefix + "tollgate:key:" + digest }

// KeyChannel carries the digest of every key whose record changed (revoked,
// deleted, re-planned, suspended, past due, canceled, given an expiry);
// workers drop it from their caches.
func (k Keys) KeyChannel() string { return k.Prefix + "tollgate:key:events" }

// RateLimit is the Redis key holding the rate-limit state of one limit
// subject (LimitSubject: a key, a subscription, or a consumer under one
// plan). The hash tag keeps it on one Cluster slot.
func (k Keys) RateLimit(subject string) string {
	return k.Prefix + "{tollgate:rl:" + subject + "}"
}

// Validate checks everything a worker relies on, so that a snapshot that
// passes can be swapped in without further checks.
func (s *Snapshot) Validate() error {
	if s == nil {
		return errors.New("nil snapshot")
	}
	if s.Schema < 1 || s.Schema > CapabilityVersion {
		return fmt.Errorf("schema %d not supported (this worker speaks 1 to %d)", s.Schema, CapabilityVersion)
	}
	if s.Generation <= 0 {
		return fmt.Errorf("generation %d not positive", s.Generation)
	}
	if s.DigestVersion != DigestRaw && s.DigestVersion != DigestDerived {
		return fmt.Errorf("digest version %d not supported", s.DigestVersion)
	}
	slugs := map[string]bool{}
	domains := map[string]bool{}
	for i := range s.Tenants {
		t := &s.Tenants[i]
		if t.ID == "" || t.Slug == "" {
			return fmt.Errorf("tenant %d: id and slug required", i)
		}
		if slugs[t.Slug] {
			return fmt.Errorf("tenant %q: duplicate slug", t.Slug)
		}
		slugs[t.Slug] = true
		for _, d := range t.Domains {
			if domains[d] {
				return fmt.Errorf("tenant %q: duplicate domain %q", t.Slug, d)
			}
			domains[d] = true
		}
		if err := t.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks one tenant's compiled configuration: everything a worker
// relies on to build it. What involves other tenants (a slug or a domain
// taken twice) is not the shard's to say: a worker serves a host name to
// one tenant only (the first to claim it, platform host names before
// custom domains) and leaves the other claims out.
func (t *Tenant) Validate() error {
	if t.ID == "" || t.Slug == "" {
		return fmt.Errorf("tenant %q: id and slug required", t.ID)
	}
	seen := make(map[string]bool, len(t.Domains))
	for _, d := range t.Domains {
		if d == "" || seen[d] {
			return fmt.Errorf("tenant %q: empty or duplicate domain %q", t.Slug, d)
		}
		seen[d] = true
	}
	if err := t.validate(); err != nil {
		return fmt.Errorf("tenant %q: %w", t.Slug, err)
	}
	return nil
}

func (t *Tenant) validate() error {
	ups := map[string]bool{}
	for _, u := range t.Upstreams {
		if u.ID == "" || ups[u.ID] {
			return fmt.Errorf("upstream %q: empty or duplicate id", u.ID)
		}
		ups[u.ID] = true
		if err := ValidateBalancing(&u); err != nil {
			return fmt.Errorf("upstream %q: %w", u.ID, err)
		}
		for _, tg := range u.Targets {
			p, err := url.Parse(tg.URL)
			if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
				return fmt.Errorf("upstream %q: bad target url %q", u.ID, tg.URL)
			}
			if tg.Weight < 1 {
				return fmt.Errorf("upstream %q: target %q weight %d < 1", u.ID, tg.URL, tg.Weight)
			}
		}
		hc := u.HealthCheck
		if hc.IntervalMS < 0 || hc.TimeoutMS < 0 || hc.HealthyThreshold < 0 || hc.UnhealthyThreshold < 0 {
			return fmt.Errorf("upstream %q: negative health check setting", u.ID)
		}
		if hc.IntervalMS > 0 && !strings.HasPrefix(hc.Path, "/") {
			return fmt.Errorf("upstream %q: health check path %q must start with /", u.ID, hc.Path)
		}
	}
	planIDs := make(map[string]bool, len(t.Plans))
	for _, p := range t.Plans {
		planIDs[p.ID] = true
	}
	apis := map[string]bool{}
	paths := map[string]bool{}
	for _, a := range t.APIs {
		if a.ID == "" || apis[a.ID] {
			return fmt.Errorf("api %q: empty or duplicate id", a.ID)
		}
		apis[a.ID] = true
		if !strings.HasPrefix(a.BasePath, "/") {
			return fmt.Errorf("api %q: base path %q must start with /", a.ID, a.BasePath)
		}
		if paths[a.BasePath] {
			return fmt.Errorf("api %q: duplicate base path %q", a.ID, a.BasePath)
		}
		paths[a.BasePath] = true
		if !ups[a.UpstreamID] {
			return fmt.Errorf("api %q: unknown upstream %q", a.ID, a.UpstreamID)
		}
		switch a.Auth {
		case AuthKey, AuthJWT, AuthNone:
		default:
			return fmt.Errorf("api %q: unknown auth %q", a.ID, a.Auth)
		}
		if a.TimeoutMS < 0 {
			return fmt.Errorf("api %q: negative timeout", a.ID)
		}
		if err := a.RateLimit.Validate(); err != nil {
			return fmt.Errorf("api %q: %w", a.ID, err)
		}
		if err := validateAPIDataplane(&a, planIDs); err != nil {
			return fmt.Errorf("api %q: %w", a.ID, err)
		}
		for _, r := range a.Routes {
			if err := ValidateRoute(r); err != nil {
				return fmt.Errorf("api %q: %w", a.ID, err)
			}
		}
		if err := validateRouteMethods(a.Routes); err != nil {
			return fmt.Errorf("api %q: %w", a.ID, err)
		}
	}
	plans := map[string]bool{}
	for _, p := range t.Plans {
		if p.ID == "" || plans[p.ID] {
			return fmt.Errorf("plan %q: empty or duplicate id", p.ID)
		}
		plans[p.ID] = true
		if err := p.RateLimit.Validate(); err != nil {
			return fmt.Errorf("plan %q: %w", p.ID, err)
		}
		if p.Concurrency < 0 {
			return fmt.Errorf("plan %q: negative concurrency", p.ID)
		}
		if p.Quota.Requests < 0 {
			return fmt.Errorf("plan %q: negative quota", p.ID)
		}
		for _, id := range p.APIIDs {
			if !apis[id] {
				return fmt.Errorf("plan %q: unknown api %q", p.ID, id)
			}
		}
	}
	return nil
}
