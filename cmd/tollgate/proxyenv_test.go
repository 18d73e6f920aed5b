package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/worker"
)

func TestProxyEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		wantErr bool
		check   func(t *testing.T, o worker.Options)
	}{
		{name: "defaults", env: map[string]string{}, check: func(t *testing.T, o worker.Options) {
			if o.SnapshotFile != "" || len(o.TrustedProxies) != 0 || o.MaxConcurrent != 0 || o.AccessLog != nil || o.Pprof {
				t.Fatalf("options %+v", o)
			}
		}},
		{name: "all set", env: map[string]string{
			"TOLLGATE_PROXY_SNAPSHOT_FILE":     "/var/lib/tollgate/snapshot.json",
			"TOLLGATE_PROXY_TRUSTED_PROXIES":   "10.0.0.0/8, 192.168.1.7",
			"TOLLGATE_PROXY_MAX_CONCURRENT":    "5000",
			"TOLLGATE_PROXY_MAX_HEADER_BYTES":  "8192",
			"TOLLGATE_PROXY_READ_TIMEOUT":      "15s",
			"TOLLGATE_PROXY_DRAIN_DELAY":       "5s",
			"TOLLGATE_PROXY_ACCESS_LOG":        "true",
			"TOLLGATE_PROXY_ACCESS_LOG_SAMPLE": "0.1",
		}, check: func(t *testing.T, o worker.Options) {
			want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32")}
			if len(o.TrustedProxies) != 2 || o.TrustedProxies[0] != want[0] || o.TrustedProxies[1] != want[1] {
				t.Fatalf("trusted %v", o.TrustedProxies)
			}
			if o.SnapshotFile == "" || o.MaxConcurrent != 5000 || o.MaxHeaderBytes != 8192 || o.ReadTimeout != 15*time.Second ||
				o.DrainDelay != 5*time.Second || o.AccessLog == nil || o.AccessLogSample != 0.1 {
				t.Fatalf("options %+v", o)
			}
		}},
		{name: "pprof on", env: map[string]string{"TOLLGATE_PROXY_PPROF": "true"}, check: func(t *testing.T, o worker.Options) {
			if !o.Pprof {
				t.Fatal("pprof off")
			}
		}},
		{name: "pprof off", env: map[string]string{"TOLLGATE_PROXY_PPROF": "false"}, check: func(t *testing.T, o worker.Options) {
			if o.Pprof {
				t.Fatal("pprof on")
			}
		}},
		{name: "bad pprof", env: map[string]string{"TOLLGATE_PROXY_PPROF": "maybe"}, wantErr: true},
		{name: "bad cidr", env: map[string]string{"TOLLGATE_PROXY_TRUSTED_PROXIES": "10.0.0.0/99"}, wantErr: true},
		{name: "bad integer", env: map[string]string{"TOLLGATE_PROXY_MAX_CONCURRENT": "-1"}, wantErr: true},
		{name: "bad duration", env: map[string]string{"TOLLGATE_PROXY_IDLE_TIMEOUT": "soon"}, wantErr: true},
		{name: "bad sample", env: map[string]string{"TOLLGATE_PROXY_ACCESS_LOG_SAMPLE": "2"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var o worker.Options
			err := proxyEnv(func(k string) string { return tc.env[k] }, &o)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, o)
			}
		})
	}
}
