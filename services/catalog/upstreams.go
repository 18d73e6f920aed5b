package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/services/outbox"
	"github.com/tollgate/tollgate/services/store"
)

// Upstream limits. MaxTargets bounds any upstream whatever the operator's
// limits say; the tenant's limit targets_per_upstream (default 64) applies
// below it.
const (
	MaxTargets      = 1000
	MaxTargetWeight = 1000
	maxURLLen       = 2048
)

// Health check defaults and limits.
const (
	DefaultHealthInterval     = 10 * time.Second
	DefaultHealthTimeout      = 2 * time.Second
	DefaultHealthyThreshold   = 2
	DefaultUnhealthyThreshold = 3
	minHealthIntervalMS       = 100
	maxHealthIntervalMS       = 3_600_000
	minHealthTimeoutMS        = 100
	maxThreshold              = 100
)

// Target is one backend address of an upstream.
type Target struct {
	// URL is http(s)://host[:port][/path].
	URL string `json:"url"`
	// Weight is the relative share of traffic under weighted balancing; omitted means 1.
	Weight *int `json:"weight,omitempty"`
}

// HealthCheck configures the active health check of an upstream. Zero fields
// take defaults: path "/", interval 10s, timeout 2s, thresholds 2 and 3,
// expected status any 2xx or 3xx.
type HealthCheck struct {
	Path               string `json:"path"`
	IntervalMS         int    `json:"interval_ms"`
	TimeoutMS          int    `json:"timeout_ms"`
	HealthyThreshold   int    `json:"healthy_threshold"`
	UnhealthyThreshold int    `json:"unhealthy_threshold"`
	ExpectedStatus     int    `json:"expected_status"`
}

// UpstreamInput is what a caller may set on an upstream.
type UpstreamInput struct {
	Name string `json:"name"`
	// Algorithm is round_robin (default) or weighted.
	Algorithm string   `json:"algorithm"`
	Targets   []Target `json:"targets"`
	// HealthCheck enables active health checks; nil means every target is taken as healthy.
	HealthCheck *HealthCheck `json:"health_check"`
	// UpstreamDataplane (inline): hash_on, outlier, retry, circuit_breaker.
	UpstreamDataplane
}

// Upstream is a stored pool of backend targets.
type Upstream struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Algorithm   string       `json:"algorithm"`
	Targets     []Target     `json:"targets"`
	HealthCheck *HealthCheck `json:"health_check"`
	UpstreamDataplane
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Input returns the settable fields of u, e.g. to apply a partial update to.
// Its targets and health check are copies: changing them leaves u as it was.
func (u Upstream) Input() UpstreamInput {
	in := UpstreamInput{Name: u.Name, Algorithm: u.Algorithm, Targets: slices.Clone(u.Targets),
		UpstreamDataplane: u.UpstreamDataplane}
	if u.HealthCheck != nil {
		hc := *u.HealthCheck
		in.HealthCheck = &hc
	}
	return in
}

// normalizeUpstream validates in and fills its defaults.
func (s *Service) normalizeUpstream(ctx context.Context, in UpstreamInput) (UpstreamInput, error) {
	v := &fault.ValidationError{}
	out := UpstreamInput{Name: strings.TrimSpace(in.Name), Algorithm: in.Algorithm}
	checkName(v, "name", in.Name)
	switch in.Algorithm {
	case "":
		out.Algorithm = proxycfg.AlgorithmRoundRobin
	case proxycfg.AlgorithmRoundRobin, proxycfg.AlgorithmWeighted, proxycfg.AlgorithmLeastConn,
		proxycfg.AlgorithmConsistentHash, proxycfg.AlgorithmRandom:
	default:
		v.Add("algorithm", "must be one of %s", algorithmNames())
	}
	out.UpstreamDataplane = normalizeUpstreamDataplane(v, out.Algorithm, in.UpstreamDataplane)
	switch {
	case len(in.Targets) == 0:
		v.Add("targets", "at least one target is required")
	case len(in.Targets) > MaxTargets:
		v.Add("targets", "at most %d targets are allowed", MaxTargets)
	}
	seen := map[string]bool{}
	var parsed []*url.URL
	for i, t := range in.Targets {
		field := fmt.Sprintf("targets[%d]", i)
		w := 1
		if t.Weight != nil {
			w = *t.Weight
			if w < 1 || w > MaxTargetWeight {
				v.Add(field+".weight", "must be between 1 and %d", MaxTargetWeight)
			}
		}
		u, msg := parseTargetURL(t.URL)
		if msg != "" {
			v.Add(field+".url", "%s", msg)
		} else if seen[u.String()] {
			v.Add(field+".url", "duplicates another target")
		} else {
			seen[u.String()] = true
		}
		parsed = append(parsed, u)
		out.Targets = append(out.Targets, Target{URL: t.URL, Weight: &w})
		if u != nil {
			out.Targets[i].URL = u.String()
		}
	}
	if in.HealthCheck != nil {
		hc := normalizeHealthCheck(v, *in.HealthCheck)
		out.HealthCheck = &hc
	}
	if err := v.Err(); err != nil {
		return UpstreamInput{}, err
	}
	// Resolve only once the input is otherwise valid: it costs network time.
	for i, u := range parsed {
		if err := s.checkTargetHost(ctx, u); err != nil {
			v.Add(fmt.Sprintf("targets[%d].url", i), "%s", err.Error())
		}
	}
	if err := v.Err(); err != nil {
		return UpstreamInput{}, err
	}
	return out, nil
}

// parseTargetURL returns the URL or a user-facing reason it is refused.
func parseTargetURL(raw string) (*url.URL, string) {
	if raw == "" {
		return nil, "is required"
	}
	if len(raw) > maxURLLen {
		return nil, fmt.Sprintf("must be at most %d characters", maxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "is not a valid URL"
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, "scheme must be http or https"
	case u.Hostname() == "":
		return nil, "must have a host"
	case u.User != nil:
		return nil, "must not contain credentials"
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, "must not contain a query or fragment"
	case u.Opaque != "":
		return nil, "is not a valid URL"
	}
	if p := u.Port(); p != "" {
		var n int
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil || n < 1 || n > 65535 {
			return nil, "port must be between 1 and 65535"
		}
	}
	return u, ""
}

func normalizeHealthCheck(v *fault.ValidationError, hc HealthCheck) HealthCheck {
	if hc.Path == "" {
		hc.Path = "/"
	}
	if !strings.HasPrefix(hc.Path, "/") || strings.ContainsAny(hc.Path, " \t\r\n#") || len(hc.Path) > 1024 {
		v.Add("health_check.path", "must start with / and contain no spaces or fragment")
	}
	if hc.IntervalMS == 0 {
		hc.IntervalMS = int(DefaultHealthInterval / time.Millisecond)
	}
	intervalOK := hc.IntervalMS >= minHealthIntervalMS && hc.IntervalMS <= maxHealthIntervalMS
	if !intervalOK {
		v.Add("health_check.interval_ms", "must be between %d and %d", minHealthIntervalMS, maxHealthIntervalMS)
	}
	if hc.TimeoutMS == 0 {
		hc.TimeoutMS = int(DefaultHealthTimeout / time.Millisecond)
		if intervalOK {
			hc.TimeoutMS = min(hc.TimeoutMS, hc.IntervalMS)
		}
	}
	// A bad interval is reported once, not again as a bad timeout.
	if hc.TimeoutMS < minHealthTimeoutMS || (intervalOK && hc.TimeoutMS > hc.IntervalMS) {
		v.Add("health_check.timeout_ms", "must be between %d and interval_ms", minHealthTimeoutMS)
	}
	if hc.HealthyThreshold == 0 {
		hc.HealthyThreshold = DefaultHealthyThreshold
	}
	if hc.HealthyThreshold < 1 || hc.HealthyThreshold > maxThreshold {
		v.Add("health_check.healthy_threshold", "must be between 1 and %d", maxThreshold)
	}
	if hc.UnhealthyThreshold == 0 {
		hc.UnhealthyThreshold = DefaultUnhealthyThreshold
	}
	if hc.UnhealthyThreshold < 1 || hc.UnhealthyThreshold > maxThreshold {
		v.Add("health_check.unhealthy_threshold", "must be between 1 and %d", maxThreshold)
	}
	if hc.ExpectedStatus != 0 && (hc.ExpectedStatus < 100 || hc.ExpectedStatus > 599) {
		v.Add("health_check.expected_status", "must be an HTTP status between 100 and 599, or 0 for any 2xx or 3xx")
	}
	return hc
}

const upstreamCols = `id, name, algorithm, health_check, created_at, updated_at, dataplane`

func scanUpstream(row pgx.Row) (Upstream, error) {
	var u Upstream
	var hc, dp []byte
	if err := row.Scan(&u.ID, &u.Name, &u.Algorithm, &hc, &u.CreatedAt, &u.UpdatedAt, &dp); err != nil {
		return Upstream{}, err
	}
	if err := decodeDataplane(dp, &u.UpstreamDataplane); err != nil {
		return Upstream{}, fmt.Errorf("upstream %s: %w", u.ID, err)
	}
	if len(hc) > 0 && string(hc) != "null" {
		u.HealthCheck = &HealthCheck{}
		if err := json.Unmarshal(hc, u.HealthCheck); err != nil {
			return Upstream{}, fmt.Errorf("decode health check of upstream %s: %w", u.ID, err)
		}
	}
	return u, nil
}

// loadTargets fills the targets of us in one query.
func loadTargets(ctx context.Context, q querier, us []Upstream) error {
	if len(us) == 0 {
		return nil
	}
	ids := make([]string, len(us))
	idx := make(map[string]int, len(us))
	for i, u := range us {
		ids[i] = u.ID
		idx[u.ID] = i
		us[i].Targets = []Target{}
	}
	rows, err := q.Query(ctx, `SELECT upstream_id, url, weight FROM targets
		WHERE upstream_id = ANY($1::uuid[]) ORDER BY upstream_id, position`, ids)
	if err != nil {
		return fmt.Errorf("load targets: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, u string
		var w int
		if err := rows.Scan(&id, &u, &w); err != nil {
			return fmt.Errorf("load targets: %w", err)
		}
		us[idx[id]].Targets = append(us[idx[id]].Targets, Target{URL: u, Weight: &w})
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load targets: %w", err)
	}
	return nil
}

// querier is what both a pool and a transaction offer for reads.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func getUpstream(ctx context.Context, q querier, tenantID, id string, forUpdate bool) (Upstream, error) {
	if !store.ValidID(id) {
		return Upstream{}, fault.ErrNotFound
	}
	sql := `SELECT ` + upstreamCols + ` FROM upstreams WHERE tenant_id = $1 AND id = $2`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	u, err := scanUpstream(q.QueryRow(ctx, sql, tenantID, id))
	if err != nil {
		return Upstream{}, notFound(err)
	}
	us := []Upstream{u}
	if err := loadTargets(ctx, q, us); err != nil {
		return Upstream{}, err
	}
	return us[0], nil
}

// GetUpstream returns one upstream of the tenant.
func (s *Service) GetUpstream(ctx context.Context, tenantID, id string) (Upstream, error) {
	u, err := getUpstream(ctx, s.DB, tenantID, id, false)
	if err != nil {
		return Upstream{}, fmt.Errorf("get upstream: %w", err)
	}
	return u, nil
}

// ListUpstreams returns one page of the tenant's upstreams and the next cursor.
func (s *Service) ListUpstreams(ctx context.Context, tenantID string, page store.Page) ([]Upstream, string, error) {
	list, next, err := listQuery(ctx, s.DB, page,
		`SELECT `+upstreamCols+` FROM upstreams WHERE tenant_id = $1 %s`, []any{tenantID},
		scanUpstream, func(u Upstream) (time.Time, string) { return u.CreatedAt, u.ID })
	if err != nil {
		return nil, "", fmt.Errorf("list upstreams: %w", err)
	}
	if err := loadTargets(ctx, s.DB, list); err != nil {
		return nil, "", fmt.Errorf("list upstreams: %w", err)
	}
	return list, next, nil
}

func writeTargets(ctx context.Context, tx pgx.Tx, id string, targets []Target) error {
	if _, err := tx.Exec(ctx, `DELETE FROM targets WHERE upstream_id = $1`, id); err != nil {
		return fmt.Errorf("replace targets: %w", err)
	}
	for i, t := range targets {
		if _, err := tx.Exec(ctx, `INSERT INTO targets (upstream_id, position, url, weight) VALUES ($1, $2, $3, $4)`,
			id, i, t.URL, *t.Weight); err != nil {
			return fmt.Errorf("insert target: %w", err)
		}
	}
	return nil
}

// CreateUpstream validates in (including the SSRF guard) and stores a new upstream.
func (s *Service) CreateUpstream(ctx context.Context, who audit.Actor, in UpstreamInput) (Upstream, error) {
	in, err := s.normalizeUpstream(ctx, in)
	if err != nil {
		return Upstream{}, err
	}
	var u Upstream
	err = store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		lim, err := s.beginLimits(ctx, tx, who.TenantID)
		if err != nil {
			return err
		}
		if err := checkAdd(ctx, tx, lim, who.TenantID, limits.Upstreams, 1, ""); err != nil {
			return err
		}
		if err := checkUpstreamLimits(ctx, tx, lim, who.TenantID, nil, in); err != nil {
			return err
		}
		u, err = scanUpstream(tx.QueryRow(ctx, `INSERT INTO upstreams (tenant_id, name, algorithm, health_check, dataplane)
			VALUES ($1, $2, $3, $4, $5) RETURNING `+upstreamCols, who.TenantID, in.Name, in.Algorithm, in.HealthCheck,
			in.UpstreamDataplane))
		if err != nil {
			return fmt.Errorf("insert upstream: %w", err)
		}
		if err := writeTargets(ctx, tx, u.ID, in.Targets); err != nil {
			return err
		}
		u.Targets = in.Targets
		if err := s.checkConfigGrowth(ctx, tx, lim, who.TenantID, -1); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, who, "upstream.create", "upstream", u.ID, u.Input()); err != nil {
			return err
		}
		return outbox.MarkChanged(ctx, tx, who.TenantID)
	})
	if err != nil {
		return Upstream{}, fmt.Errorf("create upstream: %w", err)
	}
	return u, nil
}

// UpdateUpstream applies change to the upstream's current input, validates the
// result and stores it. An error from change is returned as is (nothing written).
func (s *Service) UpdateUpstream(ctx context.Context, who audit.Actor, id string, change func(*UpstreamInput) error) (Upstream, error) {
	var u Upstream
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		lim, err := s.beginLimits(ctx, tx, who.TenantID)
		if err != nil {
			return err
		}
		cur, err := getUpstream(ctx, tx, who.TenantID, id, true)
		if err != nil {
			return err
		}
		in := cur.Input()
		if err := change(&in); err != nil {
			return err
		}
		in, err = s.normalizeUpstream(ctx, in)
		if err != nil {
			return err
		}
		if err := checkUpstreamLimits(ctx, tx, lim, who.TenantID, &cur, in); err != nil {
			return err
		}
		before, err := s.configSize(ctx, tx, who.TenantID)
		if err != nil {
			return err
		}
		u, err = scanUpstream(tx.QueryRow(ctx, `UPDATE upstreams SET name = $3, algorithm = $4, health_check = $5,
			dataplane = $6, updated_at = now() WHERE tenant_id = $1 AND id = $2 RETURNING `+upstreamCols,
			who.TenantID, id, in.Name, in.Algorithm, in.HealthCheck, in.UpstreamDataplane))
		if err != nil {
			return fmt.Errorf("update upstream: %w", err)
		}
		if err := writeTargets(ctx, tx, id, in.Targets); err != nil {
			return err
		}
		u.Targets = in.Targets
		if err := s.checkConfigGrowth(ctx, tx, lim, who.TenantID, before); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, who, "upstream.update", "upstream", id,
			map[string]any{"before": cur.Input(), "after": u.Input()}); err != nil {
			return err
		}
		return outbox.MarkChanged(ctx, tx, who.TenantID)
	})
	if err != nil {
		return Upstream{}, fmt.Errorf("update upstream: %w", err)
	}
	return u, nil
}

// checkUpstreamLimits checks a new (cur nil) or changed upstream against the
// tenant's limits on targets and on the health-check interval.
func checkUpstreamLimits(ctx context.Context, tx pgx.Tx, lim limits.Limits, tenantID string, cur *Upstream, in UpstreamInput) error {
	n := int64(len(in.Targets))
	var had int64
	if cur != nil {
		had = int64(len(cur.Targets))
	}
	if err := checkGrowth(lim, limits.TargetsPerUpstream, had, n, "targets"); err != nil {
		return err
	}
	if n > had {
		total, err := limits.Count(ctx, tx, tenantID, limits.Targets)
		if err != nil {
			return err
		}
		if err := lim.Check(limits.Targets, total-had+n, "targets"); err != nil {
			return err
		}
	}
	if in.HealthCheck != nil {
		// A check that was already shorter (the operator raised the
		// minimum since) may stay as it is, not get shorter.
		was := int64(maxHealthIntervalMS) + 1
		if cur != nil && cur.HealthCheck != nil {
			was = int64(cur.HealthCheck.IntervalMS)
		}
		if err := checkGrowth(lim, limits.MinHealthIntervalMS, was, int64(in.HealthCheck.IntervalMS), "health_check.interval_ms"); err != nil {
			return err
		}
	}
	return nil
}

// DeleteUpstream removes an upstream. It is a conflict while an API uses it.
func (s *Service) DeleteUpstream(ctx context.Context, who audit.Actor, id string) error {
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		cur, err := getUpstream(ctx, tx, who.TenantID, id, true)
		if err != nil {
			return err
		}
		var apis []string
		rows, err := tx.Query(ctx, `SELECT slug FROM apis WHERE tenant_id = $1 AND upstream_id = $2 ORDER BY slug`,
			who.TenantID, id)
		if err == nil {
			apis, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if err != nil {
			return fmt.Errorf("find apis of upstream: %w", err)
		}
		if len(apis) > 0 {
			return fault.Conflict("", "upstream is used by APIs %s; point them elsewhere or delete them first",
				strings.Join(apis, ", "))
		}
		if _, err := tx.Exec(ctx, `DELETE FROM upstreams WHERE tenant_id = $1 AND id = $2`, who.TenantID, id); err != nil {
			if _, ok := store.ForeignKeyViolation(err); ok {
				return fault.Conflict("", "upstream is used by an API")
			}
			return fmt.Errorf("delete upstream: %w", err)
		}
		if err := audit.Record(ctx, tx, who, "upstream.delete", "upstream", id, cur.Input()); err != nil {
			return err
		}
		return outbox.MarkChanged(ctx, tx, who.TenantID)
	})
	if err != nil {
		return fmt.Errorf("delete upstream: %w", err)
	}
	return nil
}
