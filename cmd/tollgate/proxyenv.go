package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/tollgate/tollgate/proxy/tlsstore"
	"github.com/tollgate/tollgate/proxy/worker"
)

// proxyVars are the data-plane tuning variables of a proxy worker. A nil
// pointer is an unset variable: the worker's default applies.
type proxyVars struct {
	// SnapshotFile keeps the last good snapshot on local disk (serve while
	// Redis is down after a restart); unset means a file per Redis
	// deployment under TOLLGATE_STATE_DIR, "off" none.
	SnapshotFile string `env:"TOLLGATE_PROXY_SNAPSHOT_FILE"`
	// KeyMaxStale is how long a cached key is still served while Redis is
	// down (worker default 15m).
	KeyMaxStale *time.Duration `env:"TOLLGATE_PROXY_KEY_MAX_STALE"`
	// TrustedProxies are comma-separated CIDRs or addresses whose
	// X-Forwarded-* headers are kept.
	TrustedProxies []netip.Prefix `env:"TOLLGATE_PROXY_TRUSTED_PROXIES"`
	// MaxConcurrent is how many requests are served at once before
	// shedding with 503 (0: no cap).
	MaxConcurrent *int `env:"TOLLGATE_PROXY_MAX_CONCURRENT"`
	// MaxHeaderBytes limits the request header block, 431 beyond (16384).
	MaxHeaderBytes *int `env:"TOLLGATE_PROXY_MAX_HEADER_BYTES"`
	// MaxBodyBytes limits the request body, 413 beyond (33554432).
	MaxBodyBytes *int `env:"TOLLGATE_PROXY_MAX_BODY_BYTES"`
	// ReadTimeout is the time to read a request from a client (60s).
	ReadTimeout *time.Duration `env:"TOLLGATE_PROXY_READ_TIMEOUT"`
	// IdleTimeout is the keep-alive idle timeout of client connections (60s).
	IdleTimeout *time.Duration `env:"TOLLGATE_PROXY_IDLE_TIMEOUT"`
	// ShutdownTimeout is the time in-flight requests get on SIGTERM (30s).
	ShutdownTimeout *time.Duration `env:"TOLLGATE_PROXY_SHUTDOWN_TIMEOUT"`
	// DrainDelay is how long /readyz says 503 on SIGTERM while connections
	// are still accepted (0).
	DrainDelay *time.Duration `env:"TOLLGATE_PROXY_DRAIN_DELAY"`
	// TLSAddr is the HTTPS listen address (HTTP/2 and HTTP/1.1), with TLSDir.
	TLSAddr string `env:"TOLLGATE_PROXY_TLS_ADDR"`
	// TLSDir holds NAME.crt/NAME.key pairs, rescanned every 10s (no restart).
	TLSDir string `env:"TOLLGATE_PROXY_TLS_DIR"`
	// H2CAddr is the cleartext HTTP/2 (h2c) and HTTP/1.1 listen address.
	H2CAddr string `env:"TOLLGATE_PROXY_H2C_ADDR"`
	// AccessLog true writes JSON access logs to stdout.
	AccessLog bool `env:"TOLLGATE_PROXY_ACCESS_LOG"`
	// AccessLogSample is the share of successful requests logged (1).
	AccessLogSample *share `env:"TOLLGATE_PROXY_ACCESS_LOG_SAMPLE"`
	// MetricsMaxAPIs is how many APIs (and upstreams) get metrics series
	// of their own (1000; 0 or less: none, all count under "~other").
	MetricsMaxAPIs *int `env:"TOLLGATE_PROXY_METRICS_MAX_APIS"`
	// Pprof true serves net/http/pprof at /debug/pprof/ on the admin port,
	// so that a live worker can be profiled (off by default).
	Pprof bool `env:"TOLLGATE_PROXY_PPROF"`
}

// share is a number from 0 to 1.
type share float64

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *share) UnmarshalText(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f < 0 || f > 1 {
		return errors.New("want a number between 0 and 1")
	}
	*s = share(f)
	return nil
}

// parsePrefixes reads comma-separated CIDRs or single addresses.
func parsePrefixes(v string) (any, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not a CIDR or address: %w", s, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// proxyEnv reads the data-plane tuning variables of a proxy worker
// (proxyVars) into opts. Unset variables keep the worker's defaults.
func proxyEnv(getenv func(string) string, opts *worker.Options) error {
	var v proxyVars
	if err := parseEnv(&v, getenv, map[reflect.Type]env.ParserFunc{
		reflect.TypeFor[[]netip.Prefix](): parsePrefixes,
	}); err != nil {
		return err
	}
	opts.SnapshotFile = v.SnapshotFile
	opts.TrustedProxies = append(opts.TrustedProxies, v.TrustedProxies...)
	setIf(&opts.MaxConcurrent, v.MaxConcurrent)
	setIf(&opts.MaxHeaderBytes, v.MaxHeaderBytes)
	setIf(&opts.MaxBodyBytes, v.MaxBodyBytes)
	setIf(&opts.ReadTimeout, v.ReadTimeout)
	setIf(&opts.IdleTimeout, v.IdleTimeout)
	setIf(&opts.ShutdownTimeout, v.ShutdownTimeout)
	setIf(&opts.DrainDelay, v.DrainDelay)
	setIf(&opts.KeyMaxStale, v.KeyMaxStale)
	if v.AccessLog {
		opts.AccessLog = slog.New(slog.NewJSONHandler(os.Stdout, nil))
	}
	if v.AccessLogSample != nil {
		opts.AccessLogSample = float64(*v.AccessLogSample)
	}
	opts.Pprof = v.Pprof
	if v.MetricsMaxAPIs != nil {
		opts.MetricsMaxAPIs = *v.MetricsMaxAPIs
		if opts.MetricsMaxAPIs == 0 {
			opts.MetricsMaxAPIs = -1 // none; the worker's 0 is the default
		}
	}
	if v.TLSAddr != "" {
		if v.TLSDir == "" {
			return fmt.Errorf("TOLLGATE_PROXY_TLS_ADDR needs TOLLGATE_PROXY_TLS_DIR (the certificates)")
		}
		l, err := net.Listen("tcp", v.TLSAddr)
		if err != nil {
			return fmt.Errorf("listen on TOLLGATE_PROXY_TLS_ADDR: %w", err)
		}
		opts.SecureListener = l
		opts.Certificates = tlsstore.New(v.TLSDir, 0, opts.Logger)
	}
	if v.H2CAddr != "" {
		l, err := net.Listen("tcp", v.H2CAddr)
		if err != nil {
			if opts.SecureListener != nil {
				opts.SecureListener.Close()
			}
			return fmt.Errorf("listen on TOLLGATE_PROXY_H2C_ADDR: %w", err)
		}
		opts.H2CListener = l
	}
	return nil
}

// setIf sets *dst to *v when the variable was set.
func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}
