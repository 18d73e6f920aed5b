package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/clientip"
	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/services/secrets"
)

// config is the operator configuration of DESIGN.md, read from the environment.
type config struct {
	DatabaseURL    string
	RedisURL       string
	RedisPrefix    string
	Secret         []byte
	OperatorToken  string
	ControlAddr    string
	ProxyAddr      string
	ProxyAdminAddr string
	ProxyDomain    string
	AllowPrivate   bool
	LogLevel       slog.Level
	// Tenant portal (issue 5): external URL, mail and the platform's default IdP.
	PublicURL        string
	SMTPURL          string
	OIDCIssuer       string
	OIDCClientID     string
	OIDCClientSecret string
	// Developer portals (issue 8).
	PortalDomain   string
	ProxyPublicURL string
	// PortalGatewayAddr is where the try-it relay connects to reach the
	// gateway (TOLLGATE_PORTAL_GATEWAY_ADDR); "" dials the gateway URL's host.
	PortalGatewayAddr string
	// DigestKeyHex is TOLLGATE_DIGEST_KEY: the key of API key and admin
	// token digests, given to workers instead of the secret (and to a
	// control plane whose database predates key derivation).
	DigestKeyHex string
	// Limits are the per-tenant limits of TOLLGATE_LIMIT_*; nil means the
	// defaults.
	Limits *limits.Limits
	// DigestKey is the installation's digest key, resolved by
	// resolveDigestKey (the control plane reads the database's version).
	DigestKey []byte
	// TrustedProxies (TOLLGATE_TRUSTED_PROXIES: CIDRs or addresses, comma
	// separated) are the load balancers in front of the control plane whose
	// X-Forwarded-For names the client, for throttling sign-in, sign-up and
	// reset per client; unset trusts none (the TCP peer is the client).
	TrustedProxies clientip.Trusted
}

const (
	defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/tollgate?sslmode=disable"
	defaultRedisURL    = "redis://127.0.0.1:6379/0"
)

// loadConfig reads the TOLLGATE_* variables. needSecret is false only for
// commands that never digest keys or tokens.
func loadConfig(getenv func(string) string, needSecret bool) (config, error) {
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	c := config{
		DatabaseURL:    get("TOLLGATE_DATABASE_URL", defaultDatabaseURL),
		RedisURL:       get("TOLLGATE_REDIS_URL", defaultRedisURL),
		RedisPrefix:    get("TOLLGATE_REDIS_PREFIX", ""),
		Secret:         []byte(getenv("TOLLGATE_SECRET")),
		OperatorToken:  getenv("TOLLGATE_OPERATOR_TOKEN"),
		ControlAddr:    get("TOLLGATE_CONTROL_ADDR", ":8080"),
		ProxyAddr:      get("TOLLGATE_PROXY_ADDR", ":8000"),
		ProxyAdminAddr: get("TOLLGATE_PROXY_ADMIN_ADDR", ":9000"),
		ProxyDomain:    strings.ToLower(get("TOLLGATE_PROXY_DOMAIN", "localhost")),

		PublicURL:        get("TOLLGATE_PUBLIC_URL", ""),
		SMTPURL:          get("TOLLGATE_SMTP_URL", ""),
		OIDCIssuer:       get("TOLLGATE_OIDC_ISSUER", ""),
		OIDCClientID:     get("TOLLGATE_OIDC_CLIENT_ID", ""),
		OIDCClientSecret: getenv("TOLLGATE_OIDC_CLIENT_SECRET"),

		PortalDomain:      strings.ToLower(strings.Trim(get("TOLLGATE_PORTAL_DOMAIN", "developers.localhost"), ".")),
		ProxyPublicURL:    get("TOLLGATE_PROXY_PUBLIC_URL", ""),
		PortalGatewayAddr: get("TOLLGATE_PORTAL_GATEWAY_ADDR", ""),
		DigestKeyHex:      get("TOLLGATE_DIGEST_KEY", ""),
	}
	if c.ProxyPublicURL != "" && !strings.Contains(c.ProxyPublicURL, "{slug}") {
		return c, fmt.Errorf("TOLLGATE_PROXY_PUBLIC_URL=%q must contain {slug}, e.g. https://{slug}.gw.example.com", c.ProxyPublicURL)
	}
	lim, err := limits.FromEnv(getenv)
	if err != nil {
		return c, err
	}
	c.Limits = &lim
	if v := getenv("TOLLGATE_UPSTREAM_ALLOW_PRIVATE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("TOLLGATE_UPSTREAM_ALLOW_PRIVATE=%q: not a boolean", v)
		}
		c.AllowPrivate = b
	}
	if v := getenv("TOLLGATE_TRUSTED_PROXIES"); strings.TrimSpace(v) != "" {
		t, err := clientip.Parse(v)
		if err != nil {
			return c, fmt.Errorf("TOLLGATE_TRUSTED_PROXIES: %w", err)
		}
		c.TrustedProxies = t
	}
	if v := getenv("TOLLGATE_LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return c, fmt.Errorf("TOLLGATE_LOG_LEVEL=%q: %w", v, err)
		}
	}
	if needSecret && secrets.IsExample(c.Secret) && string(c.Secret) != getenvDevSecret(getenv) {
		return c, secrets.CheckStrength(c.Secret, false)
	}
	if needSecret && len(c.Secret) < 16 {
		return c, fmt.Errorf("TOLLGATE_SECRET must be set to at least 16 bytes (it keys API key digests); generate one with: openssl rand -hex 32")
	}
	return c, nil
}

func (c config) keys() proxycfg.Keys { return proxycfg.Keys{Prefix: c.RedisPrefix} }

func (c config) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: c.LogLevel}))
}

// newRedis opens a go-redis UniversalClient from a redis:// or rediss:// URL.
// Several comma-separated host:port pairs in the URL's host make a Cluster client.
func newRedis(rawURL string) (redis.UniversalClient, error) {
	hosts := ""
	if i := strings.Index(rawURL, "://"); i >= 0 {
		rest := rawURL[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			rest = rest[at+1:]
		}
		if j := strings.IndexAny(rest, "/?"); j >= 0 {
			rest = rest[:j]
		}
		hosts = rest
	}
	if strings.Contains(hosts, ",") {
		addrs := strings.Split(hosts, ",")
		single := strings.Replace(rawURL, hosts, addrs[0], 1)
		o, err := redis.ParseURL(single)
		if err != nil {
			return nil, fmt.Errorf("parse TOLLGATE_REDIS_URL: %w", err)
		}
		return redis.NewUniversalClient(&redis.UniversalOptions{
			Addrs: addrs, Username: o.Username, Password: o.Password, TLSConfig: o.TLSConfig,
		}), nil
	}
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse TOLLGATE_REDIS_URL: %w", err)
	}
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: []string{o.Addr}, DB: o.DB, Username: o.Username, Password: o.Password,
		TLSConfig: o.TLSConfig, PoolSize: o.PoolSize,
	}), nil
}

// resolveDigestKey sets c.DigestKey to the installation's digest key: the
// one TOLLGATE_DIGEST_KEY gives, else the one the database's digest version
// derives from the secret (secrets.ControlDigestKey).
func (c *config) resolveDigestKey(ctx context.Context, db *pgxpool.Pool) error {
	k, err := secrets.ControlDigestKey(ctx, db, c.Secret, c.DigestKeyHex)
	if err != nil {
		return fmt.Errorf("digest key: %w", err)
	}
	c.DigestKey = k
	return nil
}

// digestKey is the key of key and token digests: DigestKey once resolved,
// else the secret.
func (c config) digestKey() []byte {
	if len(c.DigestKey) > 0 {
		return c.DigestKey
	}
	return c.Secret
}

// getenvDevSecret is the dev secret when `tollgate dev` supplies it (dev
// mode marks itself with TOLLGATE_DEV=1 in its getenv), else "".
func getenvDevSecret(getenv func(string) string) string {
	if getenv("TOLLGATE_DEV") == "1" {
		return string(getenv("TOLLGATE_SECRET"))
	}
	return ""
}

// secretAdvice is CheckStrength's objection to a secret that is accepted
// (short or not random looking), to log; "" when there is none.
func (c config) secretAdvice() string {
	if len(c.Secret) == 0 {
		return ""
	}
	if err := secrets.CheckStrength(c.Secret, false); err != nil {
		return err.Error()
	}
	return ""
}
