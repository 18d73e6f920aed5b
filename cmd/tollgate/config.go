package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/clientip"
	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/services/secrets"
)

// config is the operator configuration of DESIGN.md, read from the
// environment by loadConfig (README "Operator configuration"). An unset or
// empty variable means the envDefault; values are trimmed except where a
// field says trim:"no" (secrets are taken byte for byte).
type config struct {
	DatabaseURL string `env:"TOLLGATE_DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/tollgate?sslmode=disable"`
	// RedisURL names a single Redis, a Cluster or Sentinel (newRedis).
	RedisURL       string     `env:"TOLLGATE_REDIS_URL" envDefault:"redis://127.0.0.1:6379/0"`
	RedisPrefix    string     `env:"TOLLGATE_REDIS_PREFIX"`
	Secret         []byte     `env:"TOLLGATE_SECRET" trim:"no"`
	OperatorToken  string     `env:"TOLLGATE_OPERATOR_TOKEN" trim:"no"`
	ControlAddr    string     `env:"TOLLGATE_CONTROL_ADDR" envDefault:":8080"`
	ProxyAddr      string     `env:"TOLLGATE_PROXY_ADDR" envDefault:":8000"`
	ProxyAdminAddr string     `env:"TOLLGATE_PROXY_ADMIN_ADDR" envDefault:":9000"`
	ProxyDomain    string     `env:"TOLLGATE_PROXY_DOMAIN" envDefault:"localhost"`
	AllowPrivate   bool       `env:"TOLLGATE_UPSTREAM_ALLOW_PRIVATE"`
	LogLevel       slog.Level `env:"TOLLGATE_LOG_LEVEL"`
	// ControlAdminAddr is the control plane's operator port: /metrics,
	// /healthz and /readyz, kept off the public port.
	ControlAdminAddr string `env:"TOLLGATE_CONTROL_ADMIN_ADDR" envDefault:":9001"`
	// Tenant portal (issue 5): external URL, mail and the platform's default IdP.
	PublicURL        string `env:"TOLLGATE_PUBLIC_URL"`
	SMTPURL          string `env:"TOLLGATE_SMTP_URL"`
	OIDCIssuer       string `env:"TOLLGATE_OIDC_ISSUER"`
	OIDCClientID     string `env:"TOLLGATE_OIDC_CLIENT_ID"`
	OIDCClientSecret string `env:"TOLLGATE_OIDC_CLIENT_SECRET" trim:"no"`
	// Developer portals (issue 8).
	PortalDomain   string `env:"TOLLGATE_PORTAL_DOMAIN" envDefault:"developers.localhost"`
	ProxyPublicURL string `env:"TOLLGATE_PROXY_PUBLIC_URL"`
	// PortalGatewayAddr is where the try-it relay connects to reach the
	// gateway (TOLLGATE_PORTAL_GATEWAY_ADDR); "" dials the gateway URL's host.
	PortalGatewayAddr string `env:"TOLLGATE_PORTAL_GATEWAY_ADDR"`
	// DigestKeyHex is TOLLGATE_DIGEST_KEY: the key of API key and admin
	// token digests, given to workers instead of the secret (and to a
	// control plane whose database predates key derivation).
	DigestKeyHex string `env:"TOLLGATE_DIGEST_KEY"`
	// Limits are the per-tenant limits of TOLLGATE_LIMIT_* (a table of
	// their own, read by limits.FromEnv); nil means the defaults.
	Limits *limits.Limits `env:"-"`
	// DigestKey is the installation's digest key, resolved by
	// resolveDigestKey (the control plane reads the database's version).
	DigestKey []byte `env:"-"`
	// TrustedProxies (TOLLGATE_TRUSTED_PROXIES: CIDRs or addresses, comma
	// separated) are the load balancers in front of the control plane whose
	// X-Forwarded-For names the client, for throttling sign-in, sign-up and
	// reset per client; unset trusts none (the TCP peer is the client).
	TrustedProxies clientip.Trusted `env:"TOLLGATE_TRUSTED_PROXIES"`
}

// loadConfig reads the TOLLGATE_* variables. needSecret is false only for
// commands that never digest keys or tokens.
func loadConfig(getenv func(string) string, needSecret bool) (config, error) {
	var c config
	if err := parseEnv(&c, getenv, map[reflect.Type]env.ParserFunc{
		reflect.TypeFor[clientip.Trusted](): func(v string) (any, error) { return clientip.Parse(v) },
	}); err != nil {
		return c, err
	}
	c.ProxyDomain = strings.ToLower(c.ProxyDomain)
	c.PortalDomain = strings.ToLower(strings.Trim(c.PortalDomain, "."))
	if c.ProxyPublicURL != "" && !strings.Contains(c.ProxyPublicURL, "{slug}") {
		return c, fmt.Errorf("TOLLGATE_PROXY_PUBLIC_URL=%q must contain {slug}, e.g. https://{slug}.gw.example.com", c.ProxyPublicURL)
	}
	lim, err := limits.FromEnv(getenv)
	if err != nil {
		return c, err
	}
	c.Limits = &lim
	if needSecret && secrets.IsExample(c.Secret) && string(c.Secret) != getenvDevSecret(getenv) {
		return c, secrets.CheckStrength(c.Secret, false)
	}
	if needSecret && len(c.Secret) < 16 {
		return c, fmt.Errorf("TOLLGATE_SECRET must be set to at least 16 bytes (it keys API key digests); generate one with: openssl rand -hex 32")
	}
	return c, nil
}

// parseEnv fills the env-tagged fields of dst, a pointer to a struct, from
// getenv with caarlos0/env. The parsers of every command's variables keep
// the messages operators know: a value that does not parse is reported as
// NAME="value": why (every error found, one per line). parsers adds
// parsers of the caller's own types.
func parseEnv(dst any, getenv func(string) string, parsers map[reflect.Type]env.ParserFunc) error {
	fields := envFields(reflect.TypeOf(dst).Elem())
	environ := make(map[string]string, len(fields))
	for _, f := range fields {
		v := getenv(f.name)
		if f.trim {
			v = strings.TrimSpace(v)
		}
		if v != "" {
			environ[f.name] = v
		}
	}
	funcs := map[reflect.Type]env.ParserFunc{
		reflect.TypeFor[bool](): func(v string) (any, error) {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, errors.New("not a boolean")
			}
			return b, nil
		},
		reflect.TypeFor[int](): func(v string) (any, error) {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, errors.New("want a non-negative integer")
			}
			return n, nil
		},
		reflect.TypeFor[time.Duration](): func(v string) (any, error) {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return nil, errors.New("want a duration such as 30s")
			}
			return d, nil
		},
		reflect.TypeFor[[]byte](): func(v string) (any, error) { return []byte(v), nil },
	}
	maps.Copy(funcs, parsers)
	err := env.ParseWithOptions(dst, env.Options{Environment: environ, FuncMap: funcs})
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	byField := make(map[string]string, len(fields))
	for _, f := range fields {
		byField[f.field] = f.name
	}
	errs := make([]error, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			name := byField[pe.Name]
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, environ[name], pe.Err))
			continue
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// envField is a field of a configuration struct read from a variable.
type envField struct {
	field, name string
	trim        bool
}

func envFields(t reflect.Type) []envField {
	var out []envField
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("env"), ",")
		if name == "" || name == "-" {
			continue
		}
		out = append(out, envField{field: sf.Name, name: name, trim: sf.Tag.Get("trim") != "no"})
	}
	return out
}

func (c config) keys() proxycfg.Keys { return proxycfg.Keys{Prefix: c.RedisPrefix} }

func (c config) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: c.LogLevel}))
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
