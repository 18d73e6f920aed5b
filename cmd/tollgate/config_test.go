package main

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/proxy/worker"
)

const testSecret = "0123456789abcdef0123456789abcdef-config-test"

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(envOf(map[string]string{"TOLLGATE_SECRET": testSecret}), true)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, got, want string
	}{
		{name: "database", got: c.DatabaseURL, want: "postgres://postgres@127.0.0.1:5432/tollgate?sslmode=disable"},
		{name: "redis", got: c.RedisURL, want: "redis://127.0.0.1:6379/0"},
		{name: "prefix", got: c.RedisPrefix, want: ""},
		{name: "control", got: c.ControlAddr, want: ":8080"},
		{name: "proxy", got: c.ProxyAddr, want: ":8000"},
		{name: "proxy admin", got: c.ProxyAdminAddr, want: ":9000"},
		{name: "proxy domain", got: c.ProxyDomain, want: "localhost"},
		{name: "portal domain", got: c.PortalDomain, want: "developers.localhost"},
		{name: "secret", got: string(c.Secret), want: testSecret},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if c.AllowPrivate || c.LogLevel != slog.LevelInfo || c.Limits == nil {
		t.Errorf("allow private %v, log level %v, limits %v", c.AllowPrivate, c.LogLevel, c.Limits)
	}
}

func TestLoadConfigValues(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(envOf(map[string]string{
		"TOLLGATE_SECRET":                 "  " + testSecret, // secrets are taken byte for byte
		"TOLLGATE_REDIS_URL":              " redis-cluster://127.0.0.1:7000 ",
		"TOLLGATE_PROXY_DOMAIN":           "GW.Example.com",
		"TOLLGATE_PORTAL_DOMAIN":          ".Developers.Example.com.",
		"TOLLGATE_UPSTREAM_ALLOW_PRIVATE": "true",
		"TOLLGATE_LOG_LEVEL":              "warn",
		"TOLLGATE_TRUSTED_PROXIES":        "10.0.0.0/8, 192.168.0.10",
		"TOLLGATE_CONTROL_ADDR":           "   ", // blank: the default
		"TOLLGATE_PROXY_PUBLIC_URL":       "https://{slug}.gw.example.com",
	}), true)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Secret) != "  "+testSecret || c.RedisURL != "redis-cluster://127.0.0.1:7000" ||
		c.ProxyDomain != "gw.example.com" || c.PortalDomain != "developers.example.com" || !c.AllowPrivate ||
		c.LogLevel != slog.LevelWarn || c.ControlAddr != ":8080" || c.ProxyPublicURL != "https://{slug}.gw.example.com" {
		t.Fatalf("config %+v", c)
	}
}

// TestEnvErrorsNameTheVariable checks that a value that does not parse is
// reported under its variable's name, by loadConfig and proxyEnv alike.
func TestEnvErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		env      map[string]string
		proxy    bool // proxyEnv rather than loadConfig
		contains []string
	}{
		{name: "boolean", env: map[string]string{"TOLLGATE_UPSTREAM_ALLOW_PRIVATE": "maybe"},
			contains: []string{`TOLLGATE_UPSTREAM_ALLOW_PRIVATE="maybe": not a boolean`}},
		{name: "log level", env: map[string]string{"TOLLGATE_LOG_LEVEL": "loud"},
			contains: []string{`TOLLGATE_LOG_LEVEL="loud"`}},
		{name: "trusted proxies", env: map[string]string{"TOLLGATE_TRUSTED_PROXIES": "10.0.0.0/99"},
			contains: []string{`TOLLGATE_TRUSTED_PROXIES="10.0.0.0/99"`}},
		{name: "public url", env: map[string]string{"TOLLGATE_PROXY_PUBLIC_URL": "https://gw.example.com"},
			contains: []string{"TOLLGATE_PROXY_PUBLIC_URL", "{slug}"}},
		{name: "limit", env: map[string]string{"TOLLGATE_LIMIT_APIS": "many"},
			contains: []string{`TOLLGATE_LIMIT_APIS="many"`}},
		{name: "secret missing", env: map[string]string{"TOLLGATE_SECRET": ""},
			contains: []string{"TOLLGATE_SECRET must be set"}},
		{name: "two at once", env: map[string]string{"TOLLGATE_UPSTREAM_ALLOW_PRIVATE": "yes please", "TOLLGATE_LOG_LEVEL": "loud"},
			contains: []string{"TOLLGATE_UPSTREAM_ALLOW_PRIVATE", "TOLLGATE_LOG_LEVEL"}},
		{name: "proxy integer", proxy: true, env: map[string]string{"TOLLGATE_PROXY_MAX_CONCURRENT": "-1"},
			contains: []string{`TOLLGATE_PROXY_MAX_CONCURRENT="-1": want a non-negative integer`}},
		{name: "proxy integer word", proxy: true, env: map[string]string{"TOLLGATE_PROXY_MAX_BODY_BYTES": "32MiB"},
			contains: []string{`TOLLGATE_PROXY_MAX_BODY_BYTES="32MiB": want a non-negative integer`}},
		{name: "proxy duration", proxy: true, env: map[string]string{"TOLLGATE_PROXY_IDLE_TIMEOUT": "soon"},
			contains: []string{`TOLLGATE_PROXY_IDLE_TIMEOUT="soon": want a duration such as 30s`}},
		{name: "proxy negative duration", proxy: true, env: map[string]string{"TOLLGATE_PROXY_KEY_MAX_STALE": "-1m"},
			contains: []string{`TOLLGATE_PROXY_KEY_MAX_STALE="-1m": want a duration such as 30s`}},
		{name: "proxy boolean", proxy: true, env: map[string]string{"TOLLGATE_PROXY_ACCESS_LOG": "on-ish"},
			contains: []string{`TOLLGATE_PROXY_ACCESS_LOG="on-ish": not a boolean`}},
		{name: "proxy sample", proxy: true, env: map[string]string{"TOLLGATE_PROXY_ACCESS_LOG_SAMPLE": "2"},
			contains: []string{`TOLLGATE_PROXY_ACCESS_LOG_SAMPLE="2": want a number between 0 and 1`}},
		{name: "proxy cidr", proxy: true, env: map[string]string{"TOLLGATE_PROXY_TRUSTED_PROXIES": "10.0.0.0/8, nope"},
			contains: []string{`TOLLGATE_PROXY_TRUSTED_PROXIES="10.0.0.0/8, nope": "nope" is not a CIDR or address`}},
		{name: "proxy tls without dir", proxy: true, env: map[string]string{"TOLLGATE_PROXY_TLS_ADDR": "127.0.0.1:0"},
			contains: []string{"TOLLGATE_PROXY_TLS_ADDR needs TOLLGATE_PROXY_TLS_DIR"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var err error
			if tc.proxy {
				var o worker.Options
				err = proxyEnv(envOf(tc.env), &o)
			} else {
				env := map[string]string{"TOLLGATE_SECRET": testSecret}
				for k, v := range tc.env {
					env[k] = v
				}
				_, err = loadConfig(envOf(env), true)
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tc.contains {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}
