package proxycfg

// CapabilityVersion is the version of the contract's meaning that this build
// speaks. It moves with every change of meaning of anything that crosses
// (shards, the index, key records, the Redis layout), additive or not, and
// never goes back. Workers report it (ConfigWorkerBeat.Capability); every
// shard records the lowest version that can enforce it (Shard.Capability,
// computed by Tenant.Capability), and a worker serves a shard only when it
// speaks at least that: an older worker must not forward what a newer rule
// forbids, so it refuses the traffic of a tenant whose shard it cannot
// enforce (503), even when it holds an older shard of that tenant: the
// tenant's newest config is what the tenant allows now.
//
// To change the contract: add the constant below with its history entry,
// make CapabilityVersion that constant, make Tenant.Capability return it for
// a tenant whose config uses the change (so that tenants that do not still
// reach older workers), and record the new fields in capabilityOfField
// (capability_test.go fails on a field it does not know).
//
// History. Versions 1 to 10 are reconstructed from the repository's history
// (the contract was then one snapshot whose schema stayed 1 through all of
// them, and decoding ignored unknown fields); workers before 11 read that
// snapshot and no shard, so they never meet a shard at all.
const CapabilityVersion = CapShards

// Capability versions, oldest first. Each says what it added and what a
// worker older than it does with a config that uses the addition.
const (
	// CapBase (ccb388d, 2026-11-27): tenants served at <slug>.<proxy
	// domain> and at their Domains; upstreams with round_robin and
	// weighted balancing over targets with weights and an active health
	// check; APIs by longest base path with auth key, jwt (refused: no
	// settings yet) or none, StripBasePath and TimeoutMS; plans with a
	// sliding-window rate limit, a quota per day or month and the APIs
	// they include; key records (id, tenant, consumer, plan, status
	// active or revoked).
	CapBase = 1
	// CapDataplane (8b1ae1a): balancing least_conn, consistent_hash
	// (Upstream.HashOn) and random; passive health (Upstream.Outlier),
	// retries with a budget (Retry), a circuit breaker (CircuitBreaker);
	// JWT authentication (API.JWT: issuer, audiences, claim mapping to
	// consumers and plans, algorithms, required scopes and route scopes
	// by raw path prefix); API.MaxBodyBytes, Host, ConnectTimeoutMS and
	// ReadTimeoutMS. An older worker knows none of the algorithms and
	// refuses every JWT (no settings), but would forward bodies past
	// MaxBodyBytes.
	CapDataplane = 2
	// CapThrottling (8b1ae1a, 075b4b5): RateLimit.Burst and Scope
	// (consumer), Plan.Concurrency, API.RateLimit (a ceiling on all of an
	// API's traffic); quotas and the usage stream (Keys.Quota,
	// Keys.UsageStream, UsageRow), the worker registry. An older worker
	// ignores all of these limits.
	CapThrottling = 3
	// CapRoutes (075b4b5): API.Routes, the operations an API serves (404
	// and 405 for others). An older worker forwards every path.
	CapRoutes = 4
	// CapCustomDomains (1fb8f96): verified custom domains are published
	// (Tenant.Domains filled), and a worker serves platform host names
	// before custom domains, so that a custom domain never takes another
	// tenant's platform host; live target health reports
	// (Keys.TargetHealth).
	CapCustomDomains = 5
	// CapKeyLifecycle (e02b306): key records carry SubscriptionID,
	// ExpiresAt, GraceUntil and BillingURL, and the statuses suspended,
	// canceled and past_due; limits count per subscription
	// (LimitSubject). Key records are not in shards: the control plane
	// writes such records only once every worker speaks this version
	// (an older worker serves an expired key and counts per key).
	CapKeyLifecycle = 6
	// CapBillingPeriod (2f93dd7): key records carry PeriodStart and
	// PeriodEnd, the subscription's billing period, in which its quota
	// counts. An older worker counts calendar periods.
	CapBillingPeriod = 7
	// CapNormalizedPaths (ef5a822): requests are routed on their path in
	// normal form (decoded once, dot segments resolved, ambiguous
	// encodings refused: router.CleanPath), declared routes and base paths
	// match that form, and JWT route scopes match per decoded segment
	// without regard to case or path parameters; route templates take at
	// most MaxRouteParams parameters and an API's routes MaxRouteMethods
	// methods. An older worker compares raw bytes, which "/ADMIN" or
	// "/%61dmin" passed: it cannot enforce routes or route scopes.
	CapNormalizedPaths = 8
	// CapDigestVersion (bf5c690): the config says which key digests API
	// keys (Snapshot.DigestVersion, now the index's IndexDigestField). An
	// older worker digests with the raw secret and refuses every key of a
	// derived-key installation.
	CapDigestVersion = 9
	// CapHealthBeat (5962077): workers write target health when it
	// changes plus a heartbeat (Keys.TargetHealthBeat) instead of every
	// interval; readers take a field as current while its worker's
	// heartbeat lives. No shard depends on it.
	CapHealthBeat = 10
	// CapShards (this version): the config is an index (ConfigIndex:
	// tenant → IndexEntry, plus the platform's fields) and one shard per
	// tenant (Shard, under ConfigShard), announced on ConfigChannel with
	// the tenants that changed and logged in ConfigLog; each shard says
	// the capability it needs; shards are decoded strictly (DecodeShard);
	// workers report the version they speak and the index sequence they
	// have read (ConfigWorkerBeat). An older worker reads none of it (it
	// waits for the one snapshot that is no longer written and keeps
	// serving what it has).
	CapShards = 11
)

// Capability is the lowest capability version that can enforce everything
// t says: the newest addition its config uses. A tenant that uses nothing
// past CapBase needs only CapBase, so that a worker of any version serves
// it. The compiler records it in the tenant's shard (Shard.Capability).
func (t *Tenant) Capability() int {
	c := CapBase
	need := func(v int) {
		if v > c {
			c = v
		}
	}
	if len(t.Domains) > 0 {
		need(CapCustomDomains)
	}
	for i := range t.Upstreams {
		u := &t.Upstreams[i]
		switch u.Algorithm {
		case AlgorithmRoundRobin, AlgorithmWeighted:
		default:
			need(CapDataplane)
		}
		if u.HashOn != nil || u.Outlier != (Outlier{}) || u.Retry != (Retry{}) || u.CircuitBreaker != (CircuitBreaker{}) {
			need(CapDataplane)
		}
	}
	for i := range t.APIs {
		a := &t.APIs[i]
		if a.JWT != nil || a.MaxBodyBytes != 0 || a.Host != HostTarget || a.ConnectTimeoutMS != 0 || a.ReadTimeoutMS != 0 {
			need(CapDataplane)
		}
		if a.RateLimit != (RateLimit{}) {
			need(CapThrottling)
		}
		if len(a.Routes) > 0 || (a.JWT != nil && len(a.JWT.RouteScopes) > 0) {
			need(CapNormalizedPaths)
		}
	}
	for i := range t.Plans {
		p := &t.Plans[i]
		if p.RateLimit.Burst != 0 || p.RateLimit.Scope != "" || p.Concurrency != 0 {
			need(CapThrottling)
		}
	}
	return c
}
