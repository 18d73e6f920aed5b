package sso_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/egress"
	"github.com/tollgate/tollgate/services/sso"
)

// publicLoopback treats 127.0.0.1 (where the tests' identity providers
// listen) as a public address; 127.0.0.2 stands for the platform's own
// network.
func publicLoopback(a netip.Addr) bool {
	return a != netip.MustParseAddr("127.0.0.1") && proxycfg.IsPrivateAddr(a)
}

// hostileIdP is a tenant's identity provider whose discovery document names
// endpoints of the platform's network.
type hostileIdP struct {
	srv *httptest.Server
	// token and jwks are the discovery document's endpoints.
	token, jwks string
	// redirectDiscovery sends the discovery request elsewhere.
	redirectDiscovery string
}

func (h *hostileIdP) start(t *testing.T) {
	t.Helper()
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			if h.redirectDiscovery != "" {
				http.Redirect(w, r, h.redirectDiscovery, http.StatusFound)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{
				"issuer": h.srv.URL, "authorization_endpoint": h.srv.URL + "/authorize",
				"token_endpoint": h.token, "jwks_uri": h.jwks,
				"id_token_signing_alg_values_supported": []string{"RS256"},
			})
		case "/token":
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{
				"access_token": "at", "token_type": "Bearer", "expires_in": 60, "id_token": unsignedIDToken(h.srv.URL),
			})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(h.srv.Close)
}

// unsignedIDToken is a well-formed ID token for client "c" whose signature
// is never checked unless the key set is fetched.
func unsignedIDToken(iss string) string {
	enc := base64.RawURLEncoding
	hdr, _ := json.Marshal(map[string]any{"alg": "RS256", "kid": "k"})
	body, _ := json.Marshal(map[string]any{"iss": iss, "aud": "c", "sub": "s", "exp": time.Now().Add(time.Minute).Unix(),
		"iat": time.Now().Unix(), "nonce": "n"})
	return enc.EncodeToString(hdr) + "." + enc.EncodeToString(body) + "." + enc.EncodeToString([]byte("sig"))
}

// internalService listens on 127.0.0.2 and counts what reaches it.
func internalService(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 on this machine: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, `{"access_token":"internal","token_type":"Bearer"}`)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL, &hits
}

// TestTenantIdPCannotReachInside: a tenant's discovery document (or a
// redirect of its discovery) naming the platform's addresses gets nothing
// from them when the guard is on; dev mode reaches them.
func TestTenantIdPCannotReachInside(t *testing.T) {
	t.Parallel()
	inside, hits := internalService(t)
	guarded := egress.New(egress.Options{AllowHTTP: true, Refuse: publicLoopback})
	dev := egress.New(egress.Options{AllowHTTP: true, AllowPrivate: true})
	ctx := context.Background()
	flow := sso.Flow{State: "st", Nonce: "n", Verifier: "v"}
	callback := url.Values{"state": {"st"}, "code": {"code"}}

	t.Run("token endpoint inside", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			client *http.Client
			reach  bool
		}{{"guarded", guarded, false}, {"dev", dev, true}} {
			t.Run(tc.name, func(t *testing.T) {
				idp := &hostileIdP{token: inside + "/token", jwks: inside + "/jwks"}
				idp.start(t)
				p, err := sso.NewProvider(ctx, sso.Config{Issuer: idp.srv.URL, ClientID: "c"}, tc.client)
				if err != nil {
					t.Fatalf("discovery: %v", err)
				}
				before := hits.Load()
				_, err = p.Finish(ctx, "https://portal.example/cb", flow, callback)
				if err == nil {
					t.Fatalf("finish succeeded")
				}
				if reached := hits.Load() > before; reached != tc.reach {
					t.Errorf("internal service reached: %v, want %v (err %v)", reached, tc.reach, err)
				}
				if !tc.reach && !errors.Is(err, egress.ErrPrivateAddr) {
					t.Errorf("err = %v, want ErrPrivateAddr", err)
				}
			})
		}
	})

	t.Run("token endpoint at the metadata address", func(t *testing.T) {
		idp := &hostileIdP{token: "http://169.254.169.254/latest/meta-data/iam/", jwks: inside + "/jwks"}
		idp.start(t)
		p, err := sso.NewProvider(ctx, sso.Config{Issuer: idp.srv.URL, ClientID: "c"}, guarded)
		if err != nil {
			t.Fatalf("discovery: %v", err)
		}
		if _, err := p.Finish(ctx, "https://portal.example/cb", flow, callback); !errors.Is(err, egress.ErrPrivateAddr) {
			t.Errorf("err = %v, want ErrPrivateAddr", err)
		}
	})

	t.Run("key set inside", func(t *testing.T) {
		idp := &hostileIdP{jwks: "http://169.254.169.254/keys"}
		idp.start(t)
		idp.token = idp.srv.URL + "/token"
		p, err := sso.NewProvider(ctx, sso.Config{Issuer: idp.srv.URL, ClientID: "c"}, guarded)
		if err != nil {
			t.Fatalf("discovery: %v", err)
		}
		_, err = p.Finish(ctx, "https://portal.example/cb", flow, callback)
		if err == nil || !strings.Contains(err.Error(), egress.ErrPrivateAddr.Error()) {
			t.Errorf("err = %v, want the key fetch refused", err)
		}
	})

	t.Run("discovery redirected inside", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			client *http.Client
			reach  bool
		}{{"guarded", guarded, false}, {"dev", dev, true}} {
			t.Run(tc.name, func(t *testing.T) {
				idp := &hostileIdP{redirectDiscovery: inside + "/.well-known/openid-configuration"}
				idp.start(t)
				before := hits.Load()
				_, err := sso.NewProvider(ctx, sso.Config{Issuer: idp.srv.URL, ClientID: "c"}, tc.client)
				if err == nil {
					t.Fatalf("discovery succeeded") // the internal answer is no discovery document
				}
				if reached := hits.Load() > before; reached != tc.reach {
					t.Errorf("internal service reached: %v, want %v (err %v)", reached, tc.reach, err)
				}
				if !tc.reach && !errors.Is(err, egress.ErrPrivateAddr) {
					t.Errorf("err = %v, want ErrPrivateAddr", err)
				}
			})
		}
	})

	t.Run("the cache is guarded by default", func(t *testing.T) {
		idp := &hostileIdP{token: inside + "/token", jwks: inside + "/jwks"}
		idp.start(t)
		// The zero Cache refuses plain http and loopback alike.
		if _, err := (&sso.Cache{}).Get(ctx, sso.Config{Issuer: idp.srv.URL, ClientID: "c"}); !errors.Is(err, egress.ErrScheme) &&
			!errors.Is(err, egress.ErrPrivateAddr) {
			t.Errorf("err = %v, want the discovery refused", err)
		}
	})
}
