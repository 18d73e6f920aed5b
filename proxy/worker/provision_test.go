package worker

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// countingBackend is an echo backend that counts the connections opened to
// it and those closed.
type countingBackend struct {
	*httptest.Server
	mu             sync.Mutex
	opened, closed int
}

func newCountingBackend(t *testing.T, name string) *countingBackend {
	b := &countingBackend{Server: httptest.NewUnstartedServer(echoHandler(name))}
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch s {
		case http.StateNew:
			b.opened++
		case http.StateClosed:
			b.closed++
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

func (b *countingBackend) counts() (opened, closed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.opened, b.closed
}

// TestReloadKeepsAndClosesClients: a config change keeps the warm
// connections of targets it keeps and closes those of targets it drops; a
// snapshot the worker rejects changes nothing of either.
func TestReloadKeepsAndClosesClients(t *testing.T) {
	t.Parallel()
	kept, dropped := newCountingBackend(t, "kept"), newCountingBackend(t, "dropped")
	e := newEnv(t)
	snap := func(gen int64, targets ...string) *proxycfg.Snapshot {
		var ups []proxycfg.Upstream
		var apis []proxycfg.API
		for i, u := range targets {
			id := string(rune('a' + i))
			ups = append(ups, proxycfg.Upstream{ID: id, Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: u, Weight: 1}}})
			apis = append(apis, proxycfg.API{ID: id, Slug: id, BasePath: "/" + id, UpstreamID: id, Auth: proxycfg.AuthNone, StripBasePath: true})
		}
		return oneTenant(gen, ups, apis, nil)
	}
	testredis.Publish(t, e.rdb, e.keys, snap(1, kept.URL, dropped.URL))
	r := e.start(t, true)
	r.waitReady(t, 1)
	for _, p := range []string{"/a/x", "/b/x"} {
		if res := r.do(t, "acme.localhost", p, nil); res.status != 200 {
			t.Fatalf("%s: %d", p, res.status)
		}
	}

	// A snapshot the worker rejects (a route it cannot read): the live
	// runtime keeps serving with its clients.
	bad := snap(2, kept.URL)
	bad.Tenants[0].APIs[0].Routes = []proxycfg.Route{{Method: "GET", Path: "/{x"}}
	testredis.Publish(t, e.rdb, e.keys, bad)
	testredis.Publish(t, e.rdb, e.keys, snap(3, kept.URL))
	r.waitReady(t, 3)
	if res := r.do(t, "acme.localhost", "/a/x", nil); res.status != 200 || res.echo.Backend != "kept" {
		t.Fatalf("after the reload: %d %q", res.status, res.echo.Backend)
	}
	eventually(t, func() bool { _, c := dropped.counts(); return c == 1 })
	if o, c := kept.counts(); o != 1 || c != 0 {
		t.Fatalf("kept target: %d connections opened, %d closed across the reloads; want its one connection kept", o, c)
	}
	if o, _ := dropped.counts(); o != 1 {
		t.Fatalf("dropped target: %d connections opened", o)
	}
	if res := r.do(t, "acme.localhost", "/b/x", nil); res.status != 404 {
		t.Fatalf("dropped API: %d", res.status)
	}
}
