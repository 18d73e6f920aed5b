// Package catalog holds a tenant's gateway objects and every rule about them:
// upstreams (backend pools), APIs, plans, consumers and their API keys. It
// validates input, enforces tenant isolation (every query carries the tenant
// id) and the operator's per-tenant limits (limits.go), writes an audit
// entry and marks the data-plane config changed in the transaction of each
// change. The management API and the portals both call
// it; neither holds rules of its own.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/services/store"
)

// Service is the catalog of every tenant, backed by Postgres.
type Service struct {
	// DB is the control plane's database.
	DB *pgxpool.Pool
	// Secret keys the HMAC digests of API keys (proxycfg.Digest).
	Secret []byte
	// AllowPrivateUpstreams turns the SSRF guard off: targets may then be on
	// loopback, private and link-local addresses. For laptops and tests.
	AllowPrivateUpstreams bool
	// LookupNetIP resolves target host names for the SSRF guard. If nil,
	// net.DefaultResolver.LookupNetIP is used.
	LookupNetIP func(ctx context.Context, network, host string) ([]netip.Addr, error)
	// ResolveTimeout bounds the resolution of one target host. If zero, 2s.
	ResolveTimeout time.Duration
	// BillingURL is the stable Tollgate URL where a developer fixes a
	// subscription's payment, with {slug} (tenant) and {subscription}; it is
	// put in the key records of past-due subscriptions, for the workers'
	// 402 answers. "" leaves it out.
	BillingURL string
	// Limits are the operator's per-tenant limits (TOLLGATE_LIMIT_*, see
	// limits.FromEnv); a tenant's own values (tenant_limits) apply on top.
	// If nil, limits.Defaults().
	Limits *limits.Limits
	// ConfigSize measures a tenant's compiled config for the limit
	// config_bytes: cmd passes publish.TenantConfigBytes (the compiler reads
	// through the catalog, so the catalog cannot import it). If nil, the
	// limit is neither checked nor reported.
	ConfigSize limits.ConfigSizer
}

// New returns a Service with the default resolver.
func New(db *pgxpool.Pool, secret []byte, allowPrivateUpstreams bool) *Service {
	return &Service{DB: db, Secret: secret, AllowPrivateUpstreams: allowPrivateUpstreams}
}

func (s *Service) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	timeout := s.ResolveTimeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if s.LookupNetIP != nil {
		return s.LookupNetIP(ctx, "ip", host)
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

const maxNameLen = 200

func checkName(v *fault.ValidationError, field, name string) {
	switch {
	case strings.TrimSpace(name) == "":
		v.Add(field, "is required")
	case utf8.RuneCountInString(name) > maxNameLen:
		v.Add(field, "must be at most %d characters", maxNameLen)
	}
}

// listQuery runs a keyset-paginated list. query must select from a table
// with created_at and id, filter on "tenant_id = $1" and end with the
// placeholder %s where the keyset condition, order and limit go; extra
// filter arguments start at $2.
func listQuery[T any](ctx context.Context, db *pgxpool.Pool, page store.Page, query string,
	args []any, scan func(pgx.Row) (T, error), key func(T) (time.Time, string)) ([]T, string, error) {
	pos, err := page.Decode()
	if err != nil {
		return nil, "", err
	}
	at, id := pos.Args()
	n := len(args)
	limit := page.Size()
	q := fmt.Sprintf(query, fmt.Sprintf(
		"AND ($%d::timestamptz IS NULL OR (created_at, id) > ($%d, $%d::uuid)) ORDER BY created_at, id LIMIT $%d",
		n+1, n+1, n+2, n+3))
	rows, err := db.Query(ctx, q, append(args, at, id, limit+1)...)
	if err != nil {
		return nil, "", err
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(list) > limit {
		list = list[:limit]
		next = store.Cursor(key(list[limit-1]))
	}
	return list, next, nil
}

// notFound maps "no row" to fault.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fault.ErrNotFound
	}
	return err
}
