package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// TOLLGATE_REDIS_URL names one of three Redis deployments (DESIGN.md "Scale
// past one machine"); every one gives a go-redis UniversalClient:
//
//	redis://[user:pass@]host:6379[/db][?opt=…]              one server (rediss:// for TLS)
//	redis://[user:pass@]h1:7000,h2:7001,h3:7002[?opt=…]     a Cluster (several hosts)
//	redis-cluster://[user:pass@]h1:7000[,h2:7001][?addr=h3:7002&…]
//	                                                        a Cluster, even from one seed (rediss-cluster:// for TLS)
//	redis-sentinel://[user:pass@]h1:26379,h2:26379[/db]?master=mymaster[&sentinel_password=…]
//	                                                        Sentinel (rediss-sentinel:// for TLS)
//
// The user and password are the Redis servers' (for Sentinel, the master's
// and replicas'); sentinels that want credentials of their own take
// sentinel_username and sentinel_password. Other query parameters are
// go-redis's options in snake case (dial_timeout=3s, pool_size=50,
// max_retries=2, skip_verify=true…); an unknown one is an error, so a typo
// does not pass silently. A Cluster has only database 0.

// redisKind is the kind of Redis deployment a URL names.
type redisKind int

const (
	redisSingle redisKind = iota
	redisCluster
	redisSentinel
)

func (k redisKind) String() string {
	return [...]string{"single", "cluster", "sentinel"}[k]
}

// redisTarget is a parsed TOLLGATE_REDIS_URL: exactly one of the option
// sets, as Kind says.
type redisTarget struct {
	Kind     redisKind
	Single   *redis.Options
	Cluster  *redis.ClusterOptions
	Sentinel *redis.FailoverOptions
}

// parseRedisURL reads a TOLLGATE_REDIS_URL (the forms above).
func parseRedisURL(raw string) (redisTarget, error) {
	raw = strings.TrimSpace(raw)
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return redisTarget{}, fmt.Errorf("%q is not a URL (want redis://host:6379/0, redis-cluster://… or redis-sentinel://…)", redact(raw))
	}
	scheme = strings.ToLower(scheme)
	base, kind := scheme, redisSingle
	switch scheme {
	case "redis", "rediss", "unix":
	case "redis-cluster", "rediss-cluster":
		base, kind = strings.TrimSuffix(scheme, "-cluster"), redisCluster
	case "redis-sentinel", "rediss-sentinel":
		base, kind = strings.TrimSuffix(scheme, "-sentinel"), redisSentinel
	default:
		return redisTarget{}, fmt.Errorf("scheme %q not supported (want redis, rediss, redis-cluster, rediss-cluster, redis-sentinel or rediss-sentinel)", scheme)
	}
	if base == "unix" {
		o, err := redis.ParseURL(raw)
		if err != nil {
			return redisTarget{}, err
		}
		return redisTarget{Kind: redisSingle, Single: o}, nil
	}
	// The authority may list several hosts, which net/url does not take:
	// parse the URL with the first one and keep the others.
	auth, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		auth, tail = rest[:i], rest[i:]
	}
	userinfo, hostlist := "", auth
	if at := strings.LastIndex(auth, "@"); at >= 0 {
		userinfo, hostlist = auth[:at+1], auth[at+1:]
	}
	var hosts []string
	for _, h := range strings.Split(hostlist, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		hosts = []string{""} // go-redis's default, localhost:6379
	}
	if kind == redisSingle && len(hosts) > 1 {
		kind = redisCluster
	}
	u, err := url.Parse(base + "://" + userinfo + hosts[0] + tail)
	if err != nil {
		return redisTarget{}, fmt.Errorf("%s: %w", redact(raw), errors.Unwrap(err))
	}
	extra := make([]string, 0, len(hosts)-1)
	for _, h := range hosts[1:] {
		a, err := hostPort(h)
		if err != nil {
			return redisTarget{}, err
		}
		extra = append(extra, a)
	}
	switch kind {
	case redisCluster:
		if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
			return redisTarget{}, fmt.Errorf("database %q: a Redis Cluster has only database 0", db)
		}
		u.Path = ""
		// go-redis's cluster URL has no skip_verify (its single and
		// sentinel URLs do).
		q := u.Query()
		skip, hasSkip := q.Get("skip_verify"), q.Has("skip_verify")
		q.Del("skip_verify")
		u.RawQuery = q.Encode()
		o, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return redisTarget{}, err
		}
		o.Addrs = append(o.Addrs, extra...)
		if o.TLSConfig != nil {
			// Nodes are found through CLUSTER SLOTS: each is verified
			// under its own name, not the seed's.
			o.TLSConfig.ServerName = ""
			if hasSkip {
				b, err := strconv.ParseBool(skip)
				if err != nil {
					return redisTarget{}, fmt.Errorf("skip_verify=%q: not a boolean", skip)
				}
				o.TLSConfig.InsecureSkipVerify = b
			}
		}
		return redisTarget{Kind: redisCluster, Cluster: o}, nil
	case redisSentinel:
		return parseSentinel(u, extra)
	}
	o, err := redis.ParseURL(u.String())
	if err != nil {
		return redisTarget{}, err
	}
	return redisTarget{Kind: redisSingle, Single: o}, nil
}

// parseSentinel maps a redis-sentinel URL (u holds the first sentinel) onto
// go-redis's FailoverOptions, whose URL form takes the sentinels'
// credentials from the user info and the master's from the query: ours is
// the other way round, as operators expect of a Redis URL.
func parseSentinel(u *url.URL, extra []string) (redisTarget, error) {
	q := u.Query()
	master := q.Get("master")
	if master == "" {
		master = q.Get("master_name")
	}
	if master == "" {
		return redisTarget{}, errors.New("redis-sentinel URL needs ?master=<name of the monitored master>")
	}
	q.Del("master")
	q.Set("master_name", master)
	for _, k := range []string{"username", "password"} {
		if q.Has(k) {
			return redisTarget{}, fmt.Errorf("redis-sentinel URL: give the master's credentials as user:password@, not %s=", k)
		}
	}
	if u.User != nil {
		if name := u.User.Username(); name != "" {
			q.Set("username", name)
		}
		if pw, ok := u.User.Password(); ok {
			q.Set("password", pw)
		}
	}
	su, sp := q.Get("sentinel_username"), q.Get("sentinel_password")
	q.Del("sentinel_username")
	q.Del("sentinel_password")
	u.User = nil
	if sp != "" {
		u.User = url.UserPassword(su, sp)
	} else if su != "" {
		u.User = url.User(su)
	}
	u.RawQuery = q.Encode()
	o, err := redis.ParseFailoverURL(u.String())
	if err != nil {
		return redisTarget{}, err
	}
	o.SentinelAddrs = append(o.SentinelAddrs, extra...)
	if o.TLSConfig != nil {
		// The master and the replicas are found through the sentinels:
		// each is verified under its own name.
		o.TLSConfig.ServerName = ""
	}
	return redisTarget{Kind: redisSentinel, Sentinel: o}, nil
}

// hostPort checks a host[:port] of a host list and adds Redis's port.
func hostPort(h string) (string, error) {
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		// No port.
		host, port = strings.Trim(h, "[]"), "6379"
	}
	if host == "" {
		return "", fmt.Errorf("host %q: empty host", h)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", fmt.Errorf("host %q: bad port", h)
	}
	return net.JoinHostPort(host, port), nil
}

// redact hides a password in a URL for error messages.
func redact(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return raw
	}
	user, _, hasPW := strings.Cut(rest[:at], ":")
	if !hasPW {
		return raw
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}

// newRedis opens the Redis deployment TOLLGATE_REDIS_URL names (see
// parseRedisURL). The client connects lazily: a Redis that is down is
// reported by the first call, not here.
func newRedis(rawURL string) (redis.UniversalClient, error) {
	t, err := parseRedisURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("TOLLGATE_REDIS_URL: %w", err)
	}
	switch t.Kind {
	case redisCluster:
		return redis.NewClusterClient(t.Cluster), nil
	case redisSentinel:
		return redis.NewFailoverClient(t.Sentinel), nil
	}
	return redis.NewClient(t.Single), nil
}

// clearPrefix deletes every Redis key under prefix (dev's throwaway state,
// tests' keys). On a Cluster every master is scanned, and keys are deleted
// one by one: they live in different slots.
func clearPrefix(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	if prefix == "" {
		return errors.New("refusing to clear Redis without a key prefix")
	}
	if c, ok := rdb.(*redis.ClusterClient); ok {
		return c.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return scanDelete(ctx, node, prefix, false)
		})
	}
	return scanDelete(ctx, rdb, prefix, true)
}

// scanDelete unlinks the keys of one server matching prefix*, many per call
// when multi says the keys may be deleted together.
func scanDelete(ctx context.Context, rdb redis.Cmdable, prefix string, multi bool) error {
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		var err error
		if multi {
			err = rdb.Unlink(ctx, batch...).Err()
		} else {
			pipe := rdb.Pipeline()
			for _, k := range batch {
				pipe.Unlink(ctx, k)
			}
			_, err = pipe.Exec(ctx)
		}
		batch = batch[:0]
		return err
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return flush()
}
