package pipeline

import (
	"encoding/json"
	"testing"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// snapshotSeeds are snapshots as the control plane compiles them, covering
// every part a worker builds: hosts and custom domains, upstreams of each
// algorithm, APIs of each auth with routes and JWT settings, plans.
var snapshotSeeds = []string{
	`{"schema":1,"generation":1,"tenants":[]}`,
	`{"schema":1,"generation":3,"compiled_at":"2026-11-01T00:00:00Z","tenants":[{"id":"t1","slug":"acme","domains":["api.acme.io"],
	 "upstreams":[{"id":"u1","name":"b","algorithm":"round_robin","targets":[{"url":"http://10.0.0.5:8080","weight":1},{"url":"https://b.example/base","weight":3}],
	   "health_check":{"path":"/healthz","interval_ms":1000,"healthy_threshold":2,"unhealthy_threshold":3}}],
	 "apis":[{"id":"a1","slug":"echo","name":"Echo","base_path":"/echo","upstream_id":"u1","auth":"key","strip_base_path":true,
	   "routes":[{"method":"GET","path":"/items/{id}"},{"method":"POST","path":"/files/{name}.{ext}"}]},
	   {"id":"a2","slug":"open","name":"Open","base_path":"/","upstream_id":"u1","auth":"none","rate_limit":{"requests":10,"per_seconds":1}}],
	 "plans":[{"id":"p1","name":"Starter","rate_limit":{"requests":10,"per_seconds":1,"burst":2,"scope":"consumer"},"quota":{"requests":1000,"period":"month"},"api_ids":["a1"],"concurrency":4}]}]}`,
	`{"schema":1,"generation":7,"tenants":[{"id":"t2","slug":"globex","upstreams":[{"id":"u","algorithm":"consistent_hash","hash_on":{"source":"header","name":"X-User","bounded_load":1.5},
	   "targets":[{"url":"http://a.example","weight":1}],"outlier":{"consecutive_5xx":3},"retry":{"attempts":2},"circuit_breaker":{"max_requests":100}}],
	 "apis":[{"id":"j","slug":"orders","base_path":"/orders","upstream_id":"u","auth":"jwt","jwt":{"issuer":"https://idp.example/","audiences":["orders"],
	   "plan_id":"p","subjects":[{"value":"vip","consumer_id":"c1","plan_id":"p"}],"scopes":["read"],"route_scopes":[{"path_prefix":"/admin","methods":["POST"],"scopes":["admin"]}]}}],
	 "plans":[{"id":"p","api_ids":["j"]}]},{"id":"t3","slug":"initech","upstreams":[{"id":"u","algorithm":"least_conn","targets":[{"url":"http://c.example","weight":1}]}],
	 "apis":[{"id":"x","slug":"x","base_path":"/x","upstream_id":"u","auth":"none","max_body_bytes":1024,"host":"preserve"}],"plans":[]}]}`,
	`{"schema":1,"generation":2,"tenants":[{"id":"a","slug":"a","domains":["A.example"]},{"id":"b","slug":"b","domains":["a.example"]}]}`,
	`{"schema":1,"generation":2,"tenants":[{"id":"a","slug":"a"},{"id":"b","slug":"x","domains":["a.localhost"]}]}`,
}

// FuzzSnapshot checks the contract's promise: a snapshot that decodes and
// passes Validate can be built and swapped in without further checks (a
// worker that rejects a valid snapshot at build time stops following the
// control plane for every tenant).
func FuzzSnapshot(f *testing.F) {
	for _, s := range snapshotSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var snap proxycfg.Snapshot
		if err := json.Unmarshal(raw, &snap); err != nil {
			return
		}
		if err := snap.Validate(); err != nil {
			return
		}
		if _, err := Build(&snap, BuildOptions{Domain: "localhost"}); err != nil {
			t.Fatalf("valid snapshot does not build: %v\n%s", err, raw)
		}
	})
}
