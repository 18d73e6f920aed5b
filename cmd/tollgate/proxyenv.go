package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/proxy/tlsstore"
	"github.com/tollgate/tollgate/proxy/worker"
)

// proxyEnv reads the data-plane tuning variables of a proxy worker into
// opts. Unset variables keep the worker's defaults.
//
//	TOLLGATE_PROXY_SNAPSHOT_FILE      last good snapshot on local disk (serve while Redis is down after a restart);
//	                                  default a file per Redis deployment under TOLLGATE_STATE_DIR, "off" for none
//	TOLLGATE_PROXY_KEY_MAX_STALE      how long a cached key is still served while Redis is down (default 15m)
//	TOLLGATE_PROXY_TRUSTED_PROXIES    comma-separated CIDRs whose X-Forwarded-* headers are kept
//	TOLLGATE_PROXY_MAX_CONCURRENT     requests served at once before shedding with 503 (0: no cap)
//	TOLLGATE_PROXY_MAX_HEADER_BYTES   request header block limit, 431 beyond (default 16384)
//	TOLLGATE_PROXY_MAX_BODY_BYTES     request body limit, 413 beyond (default 33554432)
//	TOLLGATE_PROXY_READ_TIMEOUT       time to read a request from a client (default 60s)
//	TOLLGATE_PROXY_IDLE_TIMEOUT       keep-alive idle timeout of client connections (default 60s)
//	TOLLGATE_PROXY_SHUTDOWN_TIMEOUT   time in-flight requests get on SIGTERM (default 30s)
//	TOLLGATE_PROXY_DRAIN_DELAY        on SIGTERM, time /readyz says 503 while connections are still accepted (default 0)
//	TOLLGATE_PROXY_TLS_ADDR           HTTPS listen address (HTTP/2 and HTTP/1.1), with TOLLGATE_PROXY_TLS_DIR
//	TOLLGATE_PROXY_TLS_DIR            directory of NAME.crt/NAME.key pairs, rescanned every 10s (no restart)
//	TOLLGATE_PROXY_H2C_ADDR           cleartext HTTP/2 (h2c) and HTTP/1.1 listen address
//	TOLLGATE_PROXY_ACCESS_LOG         "true" writes JSON access logs to stdout
//	TOLLGATE_PROXY_ACCESS_LOG_SAMPLE  share of successful requests logged, 0..1 (default 1)
func proxyEnv(getenv func(string) string, opts *worker.Options) error {
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	opts.SnapshotFile = get("TOLLGATE_PROXY_SNAPSHOT_FILE")
	if v := get("TOLLGATE_PROXY_TRUSTED_PROXIES"); v != "" {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				a, aerr := netip.ParseAddr(s)
				if aerr != nil {
					return fmt.Errorf("TOLLGATE_PROXY_TRUSTED_PROXIES: %q is not a CIDR or address: %w", s, err)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			opts.TrustedProxies = append(opts.TrustedProxies, p.Masked())
		}
	}
	ints := []struct {
		name string
		dst  *int
	}{
		{"TOLLGATE_PROXY_MAX_CONCURRENT", &opts.MaxConcurrent},
		{"TOLLGATE_PROXY_MAX_HEADER_BYTES", &opts.MaxHeaderBytes},
		{"TOLLGATE_PROXY_MAX_BODY_BYTES", &opts.MaxBodyBytes},
	}
	for _, iv := range ints {
		if v := get(iv.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("%s=%q: want a non-negative integer", iv.name, v)
			}
			*iv.dst = n
		}
	}
	durs := []struct {
		name string
		dst  *time.Duration
	}{
		{"TOLLGATE_PROXY_READ_TIMEOUT", &opts.ReadTimeout},
		{"TOLLGATE_PROXY_IDLE_TIMEOUT", &opts.IdleTimeout},
		{"TOLLGATE_PROXY_SHUTDOWN_TIMEOUT", &opts.ShutdownTimeout},
		{"TOLLGATE_PROXY_DRAIN_DELAY", &opts.DrainDelay},
		{"TOLLGATE_PROXY_KEY_MAX_STALE", &opts.KeyMaxStale},
	}
	for _, dv := range durs {
		if v := get(dv.name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return fmt.Errorf("%s=%q: want a duration such as 30s", dv.name, v)
			}
			*dv.dst = d
		}
	}
	if v := get("TOLLGATE_PROXY_ACCESS_LOG"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("TOLLGATE_PROXY_ACCESS_LOG=%q: not a boolean", v)
		}
		if on {
			opts.AccessLog = slog.New(slog.NewJSONHandler(os.Stdout, nil))
		}
	}
	if addr := get("TOLLGATE_PROXY_TLS_ADDR"); addr != "" {
		dir := get("TOLLGATE_PROXY_TLS_DIR")
		if dir == "" {
			return fmt.Errorf("TOLLGATE_PROXY_TLS_ADDR needs TOLLGATE_PROXY_TLS_DIR (the certificates)")
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on TOLLGATE_PROXY_TLS_ADDR: %w", err)
		}
		opts.SecureListener = l
		opts.Certificates = tlsstore.New(dir, 0, opts.Logger)
	}
	if addr := get("TOLLGATE_PROXY_H2C_ADDR"); addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on TOLLGATE_PROXY_H2C_ADDR: %w", err)
		}
		opts.H2CListener = l
	}
	if v := get("TOLLGATE_PROXY_ACCESS_LOG_SAMPLE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1 {
			return fmt.Errorf("TOLLGATE_PROXY_ACCESS_LOG_SAMPLE=%q: want a number between 0 and 1", v)
		}
		opts.AccessLogSample = f
	}
	return nil
}
