package worker

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/problem"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/tlsstore"
)

// TestCustomDomainGoesLive follows a custom domain as the control plane
// publishes it once verified: before, its host is not routed and no
// certificate serves it; after a new snapshot lists it in the tenant's
// Domains and its certificate pair lands in the certificate directory
// (NAME.crt and NAME.key, names read from the certificate), the running
// worker routes it on the traffic port and serves it over TLS (HTTP/2),
// with request bodies streamed through the TLS front as well.
func TestCustomDomainGoesLive(t *testing.T) {
	t.Parallel()
	be := digestBackend(t, "b", false, nil, nil, 0)
	e := newEnv(t)
	tenant := func(gen int64, domains []string) *proxycfg.Snapshot {
		return &proxycfg.Snapshot{Schema: proxycfg.SchemaVersion, Generation: gen, Tenants: []proxycfg.Tenant{{
			ID: "t-acme", Slug: "acme", Domains: domains,
			Upstreams: []proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: be.URL, Weight: 1}}}},
			APIs:      []proxycfg.API{{ID: "a", Slug: "a", BasePath: "/", UpstreamID: "u", Auth: proxycfg.AuthNone, MaxBodyBytes: 4 << 20}},
		}}}
	}
	testredis.Publish(t, e.rdb, e.keys, tenant(1, nil))
	dir := t.TempDir()
	secure, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := e.startWith(t, func(o *Options) {
		o.SecureListener = secure
		o.Certificates = tlsstore.New(dir, 50*time.Millisecond, nil)
	})
	r.waitReady(t, 1)
	const domain = "shop.example"

	got := r.doReq(t, http.MethodGet, domain, "/x", nil, nil)
	wantProblem(t, got, problem.NotFound)
	if conn, err := tls.Dial("tcp", secure.Addr().String(), &tls.Config{ServerName: domain, InsecureSkipVerify: true}); err == nil {
		conn.Close()
		t.Fatal("TLS handshake for a domain without a certificate succeeded")
	}

	pool := selfSigned(t, dir, domain)
	testredis.Publish(t, e.rdb, e.keys, tenant(2, []string{domain}))
	r.waitReady(t, 2)

	var proto http.Protocols
	proto.SetHTTP2(true)
	tr := &http.Transport{Protocols: &proto, TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, secure.Addr().String())
		}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	// The certificate directory is rescanned every 50ms.
	eventually(t, func() bool {
		resp, err := c.Get("https://" + domain + "/x")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200 && resp.Proto == "HTTP/2.0"
	})
	if got := r.doReq(t, http.MethodGet, domain, "/x", nil, nil); got.status != 200 {
		t.Fatalf("traffic port, Host %s: status %d (%s)", domain, got.status, got.body)
	}

	tests := []struct {
		name     string
		size     int64
		declared bool
		want     int
	}{
		{name: "streamed upload over h2", size: 3 << 20, want: 200},
		{name: "small upload over h2 with length", size: 10 << 10, declared: true, want: 200},
		{name: "upload over the limit over h2", size: 5 << 20, want: 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := newPatternBody(tc.size, 0, nil)
			req, err := http.NewRequest(http.MethodPost, "https://"+domain+"/up", body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = -1
			if tc.declared {
				req.ContentLength = tc.size
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, raw, tc.want)
			}
			if tc.want != 200 {
				if resp.Header.Get("Content-Type") != problem.ContentType {
					t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
				}
				return
			}
			var d digest
			if err := json.Unmarshal(raw, &d); err != nil || d.Bytes != tc.size || d.SHA256 != body.sum() {
				t.Fatalf("backend got %+v (%v), want %d bytes (sha %s)", d, err, tc.size, body.sum())
			}
		})
	}
}
