package catalog

import (
	"context"
	"fmt"
	"regexp"
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

// API limits.
const (
	MaxAPITimeoutMS = 300_000
	maxBasePathLen  = 256
)

var (
	slugRE     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	basePathRE = regexp.MustCompile(`^/[A-Za-z0-9._~\-/]*$`)
)

// APIInput is what a caller may set on an API.
type APIInput struct {
	Name string `json:"name"`
	// Slug is a lowercase DNS label, unique in the tenant.
	Slug string `json:"slug"`
	// BasePath is the path prefix the API is served under, unique in the tenant.
	BasePath   string `json:"base_path"`
	UpstreamID string `json:"upstream_id"`
	// Auth is key (default), jwt or none.
	Auth string `json:"auth"`
	// StripBasePath removes BasePath before forwarding; omitted means true.
	StripBasePath *bool `json:"strip_base_path"`
	// TimeoutMS bounds the upstream exchange; 0 means the proxy default.
	TimeoutMS int `json:"timeout_ms"`
	// RateLimit is a ceiling on all the API's traffic together, whatever
	// the plans of its callers allow (it protects the backend); requests 0
	// (or omitted) means none. Scope does not apply.
	RateLimit RateLimit `json:"rate_limit"`
	// Published lists the API in the tenant's developer portal catalogue.
	Published bool `json:"published"`
	// APIDataplane (inline): jwt, max_body_bytes, host,
	// connect_timeout_ms, read_timeout_ms.
	APIDataplane
}

// API is a stored API.
type API struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	Slug          string    `json:"slug"`
	BasePath      string    `json:"base_path"`
	UpstreamID    string    `json:"upstream_id"`
	Auth          string    `json:"auth"`
	StripBasePath bool      `json:"strip_base_path"`
	TimeoutMS     int       `json:"timeout_ms"`
	RateLimit     RateLimit `json:"rate_limit"`
	Published     bool      `json:"published"`
	APIDataplane
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Input returns the settable fields of a.
func (a API) Input() APIInput {
	strip := a.StripBasePath
	return APIInput{Name: a.Name, Slug: a.Slug, BasePath: a.BasePath, UpstreamID: a.UpstreamID,
		Auth: a.Auth, StripBasePath: &strip, TimeoutMS: a.TimeoutMS, RateLimit: a.RateLimit, Published: a.Published, APIDataplane: a.APIDataplane}
}

// checkBasePath returns a user-facing reason to refuse p, or "".
func checkBasePath(p string) string {
	switch {
	case p == "":
		return "is required"
	case !strings.HasPrefix(p, "/"):
		return "must start with /"
	case len(p) > maxBasePathLen:
		return fmt.Sprintf("must be at most %d characters", maxBasePathLen)
	case p != "/" && strings.HasSuffix(p, "/"):
		return "must not end with / (except the root path /)"
	case strings.Contains(p, "//"):
		return "must not contain empty segments (//)"
	case !basePathRE.MatchString(p):
		return "may only contain letters, digits, '-', '.', '_', '~' and '/'"
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return "must not contain . or .. segments"
		}
	}
	return ""
}

// normalizeAPI validates in, checks that the upstream is the tenant's and fills defaults.
func normalizeAPI(ctx context.Context, q querier, tenantID string, in APIInput) (APIInput, error) {
	v := &fault.ValidationError{}
	in.Name = strings.TrimSpace(in.Name)
	checkName(v, "name", in.Name)
	if !slugRE.MatchString(in.Slug) {
		v.Add("slug", "must be a lowercase DNS label: 1-63 characters a-z, 0-9 and '-', not starting or ending with '-'")
	}
	if msg := checkBasePath(in.BasePath); msg != "" {
		v.Add("base_path", "%s", msg)
	}
	switch in.Auth {
	case "":
		in.Auth = proxycfg.AuthKey
	case proxycfg.AuthKey, proxycfg.AuthJWT, proxycfg.AuthNone:
	default:
		v.Add("auth", "must be %q, %q or %q", proxycfg.AuthKey, proxycfg.AuthJWT, proxycfg.AuthNone)
	}
	if in.StripBasePath == nil {
		t := true
		in.StripBasePath = &t
	}
	checkRateLimit(v, "rate_limit", in.RateLimit)
	if in.RateLimit.Scope != "" {
		v.Add("rate_limit.scope", "does not apply to an API's ceiling (it counts every caller together)")
	}
	if in.TimeoutMS < 0 || in.TimeoutMS > MaxAPITimeoutMS {
		v.Add("timeout_ms", "must be between 0 (proxy default) and %d", MaxAPITimeoutMS)
	}
	switch {
	case in.UpstreamID == "":
		v.Add("upstream_id", "is required")
	case !store.ValidID(in.UpstreamID):
		v.Add("upstream_id", "no such upstream")
	default:
		var ok bool
		if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM upstreams WHERE tenant_id = $1 AND id = $2)`,
			tenantID, in.UpstreamID).Scan(&ok); err != nil {
			return APIInput{}, fmt.Errorf("check upstream: %w", err)
		}
		if !ok {
			v.Add("upstream_id", "no such upstream")
		}
	}
	dp, err := normalizeAPIDataplane(ctx, v, q, tenantID, in.Auth, in.APIDataplane)
	if err != nil {
		return APIInput{}, err
	}
	in.APIDataplane = dp
	if err := v.Err(); err != nil {
		return APIInput{}, err
	}
	return in, nil
}

// apiConflict turns a unique violation into a conflict on the right field.
func apiConflict(err error, in APIInput) error {
	c, ok := store.UniqueViolation(err)
	switch {
	case !ok:
		return err
	case c == "apis_tenant_slug_key":
		return fault.Conflict("slug", "another API of this tenant has slug %q", in.Slug)
	case c == "apis_tenant_base_path_key":
		return fault.Conflict("base_path", "another API of this tenant is served under %q", in.BasePath)
	}
	return fault.Conflict("", "the API clashes with another one")
}

const apiCols = `id, name, slug, base_path, upstream_id, auth, strip_base_path, timeout_ms, created_at, updated_at,
	rate_limit_requests, rate_limit_per_seconds, rate_limit_burst, dataplane, published`

func scanAPI(row pgx.Row) (API, error) {
	var a API
	var dp []byte
	err := row.Scan(&a.ID, &a.Name, &a.Slug, &a.BasePath, &a.UpstreamID, &a.Auth, &a.StripBasePath,
		&a.TimeoutMS, &a.CreatedAt, &a.UpdatedAt, &a.RateLimit.Requests, &a.RateLimit.PerSeconds, &a.RateLimit.Burst, &dp, &a.Published)
	if err == nil {
		err = decodeDataplane(dp, &a.APIDataplane)
	}
	return a, err
}

func getAPI(ctx context.Context, q querier, tenantID, id string, forUpdate bool) (API, error) {
	if !store.ValidID(id) {
		return API{}, fault.ErrNotFound
	}
	sql := `SELECT ` + apiCols + ` FROM apis WHERE tenant_id = $1 AND id = $2`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	a, err := scanAPI(q.QueryRow(ctx, sql, tenantID, id))
	return a, notFound(err)
}

// GetAPI returns one API of the tenant.
func (s *Service) GetAPI(ctx context.Context, tenantID, id string) (API, error) {
	a, err := getAPI(ctx, s.DB, tenantID, id, false)
	if err != nil {
		return API{}, fmt.Errorf("get api: %w", err)
	}
	return a, nil
}

// ListAPIs returns one page of the tenant's APIs and the next cursor.
func (s *Service) ListAPIs(ctx context.Context, tenantID string, page store.Page) ([]API, string, error) {
	list, next, err := listQuery(ctx, s.DB, page, `SELECT `+apiCols+` FROM apis WHERE tenant_id = $1 %s`,
		[]any{tenantID}, scanAPI, func(a API) (time.Time, string) { return a.CreatedAt, a.ID })
	if err != nil {
		return nil, "", fmt.Errorf("list apis: %w", err)
	}
	return list, next, nil
}

// CreateAPI validates in and stores a new API.
func (s *Service) CreateAPI(ctx context.Context, who audit.Actor, in APIInput) (API, error) {
	var a API
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		lim, err := s.beginLimits(ctx, tx, who.TenantID)
		if err != nil {
			return err
		}
		if err := checkAdd(ctx, tx, lim, who.TenantID, limits.APIs, 1, ""); err != nil {
			return err
		}
		in, err := normalizeAPI(ctx, tx, who.TenantID, in)
		if err != nil {
			return err
		}
		a, err = scanAPI(tx.QueryRow(ctx, `INSERT INTO apis (tenant_id, name, slug, base_path, upstream_id, auth,
			strip_base_path, timeout_ms, rate_limit_requests, rate_limit_per_seconds, rate_limit_burst, dataplane, published)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING `+apiCols,
			who.TenantID, in.Name, in.Slug, in.BasePath, in.UpstreamID, in.Auth, *in.StripBasePath, in.TimeoutMS,
			in.RateLimit.Requests, in.RateLimit.PerSeconds, in.RateLimit.Burst, in.APIDataplane, in.Published))
		if err != nil {
			return fmt.Errorf("insert api: %w", apiConflict(err, in))
		}
		if err := s.checkConfigGrowth(ctx, tx, lim, who.TenantID, -1); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, who, "api.create", "api", a.ID, a.Input()); err != nil {
			return err
		}
		return outbox.MarkChanged(ctx, tx, who.TenantID)
	})
	if err != nil {
		return API{}, fmt.Errorf("create api: %w", err)
	}
	return a, nil
}

// UpdateAPI applies change to the API's current input, validates and stores it.
func (s *Service) UpdateAPI(ctx context.Context, who audit.Actor, id string, change func(*APIInput) error) (API, error) {
	var a API
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		lim, err := s.beginLimits(ctx, tx, who.TenantID)
		if err != nil {
			return err
		}
		cur, err := getAPI(ctx, tx, who.TenantID, id, true)
		if err != nil {
			return err
		}
		before, err := s.configSize(ctx, tx, who.TenantID)
		if err != nil {
			return err
		}
		in := cur.Input()
		if err := change(&in); err != nil {
			return err
		}
		in, err = normalizeAPI(ctx, tx, who.TenantID, in)
		if err != nil {
			return err
		}
		a, err = scanAPI(tx.QueryRow(ctx, `UPDATE apis SET name = $3, slug = $4, base_path = $5, upstream_id = $6,
			auth = $7, strip_base_path = $8, timeout_ms = $9, rate_limit_requests = $10, rate_limit_per_seconds = $11,
			rate_limit_burst = $12, dataplane = $13, published = $14, updated_at = now()
			WHERE tenant_id = $1 AND id = $2 RETURNING `+apiCols,
			who.TenantID, id, in.Name, in.Slug, in.BasePath, in.UpstreamID, in.Auth, *in.StripBasePath, in.TimeoutMS,
			in.RateLimit.Requests, in.RateLimit.PerSeconds, in.RateLimit.Burst, in.APIDataplane, in.Published))
		if err != nil {
			return fmt.Errorf("update api: %w", apiConflict(err, in))
		}
		if err := s.checkConfigGrowth(ctx, tx, lim, who.TenantID, before); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, who, "api.update", "api", id,
			map[string]any{"before": cur.Input(), "after": a.Input()}); err != nil {
			return err
		}
		return outbox.MarkChanged(ctx, tx, who.TenantID)
	})
	if err != nil {
		return API{}, fmt.Errorf("update api: %w", err)
	}
	return a, nil
}

// DeleteAPI removes an API; plans that included it no longer do.
func (s *Service) DeleteAPI(ctx context.Context, who audit.Actor, id string) error {
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		cur, err := getAPI(ctx, tx, who.TenantID, id, true)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM apis WHERE tenant_id = $1 AND id = $2`, who.TenantID, id); err != nil {
			return fmt.Errorf("delete api: %w", err)
		}
		if err := audit.Record(ctx, tx, who, "api.delete", "api", id, cur.Input()); err != nil {
			return err
		}
		return outbox.MarkChanged(ctx, tx, who.TenantID)
	})
	if err != nil {
		return fmt.Errorf("delete api: %w", err)
	}
	return nil
}

// MaxPublishedListed bounds the catalogue of a developer portal.
const MaxPublishedListed = 1000

// ListPublishedAPIs returns the tenant's APIs published in its developer
// portal, by name (at most MaxPublishedListed).
func (s *Service) ListPublishedAPIs(ctx context.Context, tenantID string) ([]API, error) {
	rows, err := s.DB.Query(ctx, `SELECT `+apiCols+` FROM apis WHERE tenant_id = $1 AND published
		ORDER BY lower(name), id LIMIT $2`, tenantID, MaxPublishedListed)
	if err != nil {
		return nil, fmt.Errorf("list published apis: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (API, error) { return scanAPI(r) })
	if err != nil {
		return nil, fmt.Errorf("list published apis: %w", err)
	}
	return list, nil
}

// GetPublishedAPI returns one published API of the tenant; an unpublished
// one is not found.
func (s *Service) GetPublishedAPI(ctx context.Context, tenantID, id string) (API, error) {
	a, err := getAPI(ctx, s.DB, tenantID, id, false)
	if err == nil && !a.Published {
		err = fault.ErrNotFound
	}
	if err != nil {
		return API{}, fmt.Errorf("get published api: %w", err)
	}
	return a, nil
}
