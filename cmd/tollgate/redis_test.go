package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseRedisURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		url    string
		kind   redisKind
		addrs  []string // Addr of a single server, Addrs of a cluster, SentinelAddrs
		db     int
		user   string
		pw     string
		tls    bool
		master string
		// sentinel's own credentials
		sentUser, sentPW string
		check            func(t *testing.T, r redisTarget)
	}{
		{name: "default", url: "redis://127.0.0.1:6379/0", kind: redisSingle, addrs: []string{"127.0.0.1:6379"}},
		{name: "db and password", url: "redis://:s3cret@cache:6380/3", kind: redisSingle, addrs: []string{"cache:6380"}, db: 3, pw: "s3cret"},
		{name: "tls", url: "rediss://user:pw@cache.example.com/1?dial_timeout=3s", kind: redisSingle,
			addrs: []string{"cache.example.com:6379"}, db: 1, user: "user", pw: "pw", tls: true,
			check: func(t *testing.T, r redisTarget) {
				if r.Single.DialTimeout != 3*time.Second || r.Single.TLSConfig.ServerName != "cache.example.com" {
					t.Errorf("dial timeout %v, server name %q", r.Single.DialTimeout, r.Single.TLSConfig.ServerName)
				}
			}},
		{name: "several hosts make a cluster", url: "redis://h1:7000,h2:7001,h3:7002", kind: redisCluster,
			addrs: []string{"h1:7000", "h2:7001", "h3:7002"}},
		{name: "cluster scheme with addr", url: "redis-cluster://:pw@h1:7000?addr=h2:7001&addr=h3:7002&pool_size=20", kind: redisCluster,
			addrs: []string{"h1:7000", "h2:7001", "h3:7002"}, pw: "pw",
			check: func(t *testing.T, r redisTarget) {
				if r.Cluster.PoolSize != 20 {
					t.Errorf("pool size %d", r.Cluster.PoolSize)
				}
			}},
		{name: "cluster with db 0 and a host without port", url: "redis-cluster://h1,h2:7001/0", kind: redisCluster,
			addrs: []string{"h1:6379", "h2:7001"}},
		{name: "cluster tls", url: "rediss-cluster://h1:7000,h2:7001?skip_verify=true", kind: redisCluster,
			addrs: []string{"h1:7000", "h2:7001"}, tls: true,
			check: func(t *testing.T, r redisTarget) {
				if c := r.Cluster.TLSConfig; c.ServerName != "" || !c.InsecureSkipVerify {
					t.Errorf("tls server name %q (want each node's), skip verify %v", c.ServerName, c.InsecureSkipVerify)
				}
			}},
		{name: "sentinel", url: "redis-sentinel://:pw@s1:26379,s2:26380/2?master=mymaster", kind: redisSentinel,
			addrs: []string{"s1:26379", "s2:26380"}, db: 2, pw: "pw", master: "mymaster"},
		{name: "sentinel with its own credentials", url: "rediss-sentinel://app:pw@s1?master=m&sentinel_username=sen&sentinel_password=spw&addr=s3:26381",
			kind: redisSentinel, addrs: []string{"s1:6379", "s3:26381"}, user: "app", pw: "pw", master: "m", tls: true,
			sentUser: "sen", sentPW: "spw"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseRedisURL(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if r.Kind != tc.kind {
				t.Fatalf("kind %v, want %v", r.Kind, tc.kind)
			}
			var addrs []string
			var db int
			var user, pw string
			var tls bool
			switch r.Kind {
			case redisSingle:
				addrs, db, user, pw, tls = []string{r.Single.Addr}, r.Single.DB, r.Single.Username, r.Single.Password, r.Single.TLSConfig != nil
			case redisCluster:
				addrs, user, pw, tls = r.Cluster.Addrs, r.Cluster.Username, r.Cluster.Password, r.Cluster.TLSConfig != nil
			case redisSentinel:
				o := r.Sentinel
				addrs, db, user, pw, tls = o.SentinelAddrs, o.DB, o.Username, o.Password, o.TLSConfig != nil
				if o.MasterName != tc.master || o.SentinelUsername != tc.sentUser || o.SentinelPassword != tc.sentPW {
					t.Errorf("master %q, sentinel credentials %q:%q; want %q, %q:%q", o.MasterName,
						o.SentinelUsername, o.SentinelPassword, tc.master, tc.sentUser, tc.sentPW)
				}
			}
			if !slices.Equal(addrs, tc.addrs) || db != tc.db || user != tc.user || pw != tc.pw || tls != tc.tls {
				t.Errorf("addrs %v db %d user %q password %q tls %v; want %v %d %q %q %v",
					addrs, db, user, pw, tls, tc.addrs, tc.db, tc.user, tc.pw, tc.tls)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestParseRedisURLErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, url, contains string
	}{
		{name: "no scheme", url: "127.0.0.1:6379", contains: "not a URL"},
		{name: "unknown scheme", url: "memcached://h:11211", contains: `scheme "memcached"`},
		{name: "cluster db", url: "redis://h1:7000,h2:7001/3", contains: "only database 0"},
		{name: "sentinel without master", url: "redis-sentinel://s1:26379", contains: "master="},
		{name: "sentinel password in query", url: "redis-sentinel://s1?master=m&password=x", contains: "user:password@"},
		{name: "unknown option", url: "redis://h:6379?pool_sise=3", contains: "pool_sise"},
		{name: "bad extra host", url: "redis://h1:7000,h2:99999", contains: "bad port"},
		{name: "password hidden", url: "redis://:hunter2@h:x/0", contains: "invalid port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newRedis(tc.url)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), "TOLLGATE_REDIS_URL") || !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q, want it to name TOLLGATE_REDIS_URL and contain %q", err, tc.contains)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}
