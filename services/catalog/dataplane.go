package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/jackc/pgx/v5"
	"slices"
	"strings"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
)

// Data-plane limits.
const (
	MaxRetryAttempts  = 5
	MaxEjectionMS     = 3_600_000
	MaxJWTSubjects    = 1000
	MaxAPIBodyBytes   = 1 << 30
	MaxConnectTimeout = 60_000
)

// UpstreamDataplane are an upstream's balancing and resilience settings
// beyond the algorithm; they are stored together in upstreams.dataplane and
// appear inline in the upstream's JSON.
type UpstreamDataplane struct {
	// HashOn is the key of consistent_hash balancing: {source: header |
	// cookie | client_ip | consumer, name, bounded_load}. Required for
	// consistent_hash, refused otherwise.
	HashOn *proxycfg.HashOn `json:"hash_on,omitempty"`
	// Outlier is passive health checking (outlier detection); omitted is off.
	Outlier *proxycfg.Outlier `json:"outlier,omitempty"`
	// Retry retries idempotent requests on another target under a budget;
	// omitted is no retries.
	Retry *proxycfg.Retry `json:"retry,omitempty"`
	// CircuitBreaker caps in-flight requests per target; omitted is no cap.
	CircuitBreaker *proxycfg.CircuitBreaker `json:"circuit_breaker,omitempty"`
}

// APIDataplane are an API's gateway settings beyond routing; they are stored
// together in apis.dataplane and appear inline in the API's JSON.
type APIDataplane struct {
	// JWT configures auth "jwt": issuer, audiences, claim, algorithms,
	// plan_id, subjects, scopes, route_scopes (see proxycfg.JWT).
	JWT *proxycfg.JWT `json:"jwt,omitempty"`
	// MaxBodyBytes caps request bodies (413 beyond); 0 is the proxy default.
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`
	// Host is the Host header sent upstream: omitted the target's host,
	// "preserve" the client's, or a host name to send instead.
	Host string `json:"host,omitempty"`
	// ConnectTimeoutMS bounds connecting to a target; 0 is the proxy default.
	ConnectTimeoutMS int `json:"connect_timeout_ms,omitempty"`
	// ReadTimeoutMS bounds reading the response once the request is sent;
	// 0 means timeout_ms only.
	ReadTimeoutMS int `json:"read_timeout_ms,omitempty"`
}

// normalizeUpstreamDataplane validates d for algorithm.
func normalizeUpstreamDataplane(v *fault.ValidationError, algorithm string, d UpstreamDataplane) UpstreamDataplane {
	if algorithm == proxycfg.AlgorithmConsistentHash {
		if d.HashOn == nil {
			v.Add("hash_on", "is required for consistent_hash")
		}
	} else if d.HashOn != nil {
		v.Add("hash_on", "applies to consistent_hash only")
	}
	if h := d.HashOn; h != nil {
		switch h.Source {
		case proxycfg.HashOnHeader, proxycfg.HashOnCookie:
			if h.Name == "" || len(h.Name) > 128 || strings.ContainsAny(h.Name, " \t\r\n:;=,") {
				v.Add("hash_on.name", "must be a header or cookie name")
			}
		case proxycfg.HashOnClientIP, proxycfg.HashOnConsumer:
			if h.Name != "" {
				v.Add("hash_on.name", "applies to header and cookie sources only")
			}
		default:
			v.Add("hash_on.source", "must be header, cookie, client_ip or consumer")
		}
		if h.BoundedLoad != 0 && (h.BoundedLoad < 1 || h.BoundedLoad > 10) {
			v.Add("hash_on.bounded_load", "must be between 1 and 10 (0 for the default 1.25)")
		}
	}
	if o := d.Outlier; o != nil {
		if o.Consecutive5xx < 0 || o.Consecutive5xx > 1000 {
			v.Add("outlier.consecutive_5xx", "must be between 0 (off) and 1000")
		}
		if o.ConsecutiveErrors < 0 || o.ConsecutiveErrors > 1000 {
			v.Add("outlier.consecutive_errors", "must be between 0 (off) and 1000")
		}
		if o.BaseEjectionMS < 0 || o.BaseEjectionMS > MaxEjectionMS {
			v.Add("outlier.base_ejection_ms", "must be between 0 (default 5000) and %d", MaxEjectionMS)
		}
		if o.MaxEjectionMS < 0 || o.MaxEjectionMS > MaxEjectionMS {
			v.Add("outlier.max_ejection_ms", "must be between 0 (default 300000) and %d", MaxEjectionMS)
		}
		if o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100 {
			v.Add("outlier.max_ejection_percent", "must be between 0 (default 50) and 100")
		}
	}
	if r := d.Retry; r != nil {
		if r.Attempts < 0 || r.Attempts > MaxRetryAttempts {
			v.Add("retry.attempts", "must be between 0 and %d", MaxRetryAttempts)
		}
		if r.BudgetPercent < 0 || r.BudgetPercent > 100 {
			v.Add("retry.budget_percent", "must be between 0 (default 20) and 100")
		}
		if r.MinPerSecond < 0 || r.MinPerSecond > 10000 {
			v.Add("retry.min_per_second", "must be between 0 (default 3) and 10000")
		}
	}
	if c := d.CircuitBreaker; c != nil && (c.MaxRequests < 0 || c.MaxRequests > 1_000_000) {
		v.Add("circuit_breaker.max_requests", "must be between 0 (off) and 1000000")
	}
	return d
}

// normalizeAPIDataplane validates d for an API with auth; it checks JWT
// plan references against the tenant's plans.
func normalizeAPIDataplane(ctx context.Context, v *fault.ValidationError, q querier, tenantID, auth string, d APIDataplane) (APIDataplane, error) {
	if d.MaxBodyBytes < 0 || d.MaxBodyBytes > MaxAPIBodyBytes {
		v.Add("max_body_bytes", "must be between 0 (proxy default) and %d", MaxAPIBodyBytes)
	}
	if d.ConnectTimeoutMS < 0 || d.ConnectTimeoutMS > MaxConnectTimeout {
		v.Add("connect_timeout_ms", "must be between 0 (proxy default) and %d", MaxConnectTimeout)
	}
	if d.ReadTimeoutMS < 0 || d.ReadTimeoutMS > MaxAPITimeoutMS {
		v.Add("read_timeout_ms", "must be between 0 (timeout_ms only) and %d", MaxAPITimeoutMS)
	}
	switch d.Host {
	case proxycfg.HostTarget, proxycfg.HostPreserve:
	default:
		if len(d.Host) > 255 || strings.ContainsAny(d.Host, " /\\\t\r\n@?#") {
			v.Add("host", "must be omitted, \"preserve\" or a host name (with an optional port)")
		}
	}
	if auth != proxycfg.AuthJWT {
		if d.JWT != nil {
			v.Add("jwt", "applies to APIs with auth \"jwt\" only")
		}
		return d, nil
	}
	if d.JWT == nil {
		v.Add("jwt", "is required for auth \"jwt\" (issuer and audiences at least)")
		return d, nil
	}
	j := *d.JWT
	if j.Claim == "" {
		j.Claim = "sub"
	}
	if len(j.Algorithms) == 0 {
		j.Algorithms = []string{"RS256"}
	}
	if len(j.Subjects) > MaxJWTSubjects {
		v.Add("jwt.subjects", "at most %d subjects; map more callers through plan_id", MaxJWTSubjects)
	}
	// A subject's consumer must be one of the tenant's: workers cannot
	// tell (consumers are not in the snapshot), and another tenant's id
	// would make its usage and limits someone else's.
	var ids []string
	for i, s := range j.Subjects {
		switch {
		case s.ConsumerID == "":
		case !store.ValidID(s.ConsumerID):
			v.Add(fmt.Sprintf("jwt.subjects[%d].consumer_id", i), "no such consumer")
		default:
			ids = append(ids, s.ConsumerID)
		}
	}
	if len(ids) > 0 {
		rows, err := q.Query(ctx, `SELECT id::text FROM consumers WHERE tenant_id = $1 AND id = ANY($2::uuid[])`, tenantID, ids)
		if err != nil {
			return APIDataplane{}, fmt.Errorf("check jwt subject consumers: %w", err)
		}
		found, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return APIDataplane{}, fmt.Errorf("check jwt subject consumers: %w", err)
		}
		ok := map[string]bool{}
		for _, id := range found {
			ok[id] = true
		}
		for i, s := range j.Subjects {
			if s.ConsumerID != "" && store.ValidID(s.ConsumerID) && !ok[strings.ToLower(s.ConsumerID)] {
				v.Add(fmt.Sprintf("jwt.subjects[%d].consumer_id", i), "no such consumer")
			}
		}
	}
	plans, err := tenantPlanIDs(ctx, q, tenantID)
	if err != nil {
		return APIDataplane{}, err
	}
	if err := proxycfg.ValidateJWT(&j, plans); err != nil {
		v.Add("jwt", "%s", err.Error())
	}
	d.JWT = &j
	return d, nil
}

func tenantPlanIDs(ctx context.Context, q querier, tenantID string) (map[string]bool, error) {
	rows, err := q.Query(ctx, `SELECT id::text FROM plans WHERE tenant_id = $1`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("load plan ids: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("load plan ids: %w", err)
		}
		out[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load plan ids: %w", err)
	}
	return out, nil
}

// decodeDataplane reads a dataplane jsonb column into dst.
func decodeDataplane(raw []byte, dst any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("decode dataplane settings: %w", err)
	}
	return nil
}

// algorithmNames lists the balancing algorithms for error messages.
func algorithmNames() string {
	names := slices.Clone(proxycfg.Algorithms)
	for i, n := range names {
		names[i] = `"` + n + `"`
	}
	return strings.Join(names, ", ")
}
