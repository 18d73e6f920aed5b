package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/pipeline"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/router"
)

// routeLookup reads every shard the index names (the config in Redis: its
// size), composes a runtime of all of them as a worker does at start
// (pipeline.Composer, in the bench), and times the route lookup of a
// request: the tenant by host and the API by base path (Runtime.Route),
// then the route by method and path (router.Routes.Match on the API's
// routes, as the pipeline's route check does), over random requests of
// random tenants.
func (b *bench) routeLookup(ctx context.Context, m *measurement) error {
	all, err := b.rdb.HGetAll(ctx, b.keys.ConfigIndex()).Result()
	if err != nil {
		return err
	}
	var ids []string
	entries := map[string]proxycfg.IndexEntry{}
	for id, v := range all {
		if strings.HasPrefix(id, "~") {
			continue
		}
		e, err := proxycfg.ParseIndexEntry(v)
		if err != nil {
			return err
		}
		ids, entries[id] = append(ids, id), e
	}
	var shards []*proxycfg.Shard
	m.shardBytes, m.tenantShardMax = 0, 0
	for start := 0; start < len(ids); start += 500 {
		batch := ids[start:min(start+500, len(ids))]
		pipe := b.rdb.Pipeline()
		cmds := make([]*redis.StringCmd, len(batch))
		for i, id := range batch {
			cmds[i] = pipe.Get(ctx, b.keys.ConfigShard(id, entries[id].Generation))
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		for i, id := range batch {
			raw, err := cmds[i].Bytes()
			if err != nil {
				return fmt.Errorf("shard of %s: %w", id, err)
			}
			m.shardBytes += int64(len(raw))
			m.tenantShardMax = max(m.tenantShardMax, len(raw))
			s, err := proxycfg.DecodeShard(raw, proxycfg.CapabilityVersion)
			if err != nil {
				return err
			}
			shards = append(shards, s)
		}
	}
	m.shardCount = len(shards)

	start := time.Now()
	c := pipeline.NewComposer(pipeline.BuildOptions{Domain: "localhost"})
	u := pipeline.Update{Generation: 1, DigestVersion: proxycfg.DigestDerived}
	routes := map[string]*router.Routes{}
	for _, s := range shards {
		part, err := c.BuildTenant(&s.Tenant, pipeline.ShardInfo{Generation: s.Generation, CompiledAt: s.CompiledAt,
			Capability: s.Capability}, nil)
		if err != nil {
			return fmt.Errorf("build %s: %w", s.Tenant.Slug, err)
		}
		u.Changes = append(u.Changes, pipeline.Change{ID: s.Tenant.ID, Part: part})
	}
	rt := c.Compose(nil, u)
	m.buildTook = time.Since(start)
	for _, s := range shards {
		for _, a := range s.Tenant.APIs {
			r, err := router.CompileRoutes(a.Routes)
			if err != nil {
				return err
			}
			routes[a.ID] = r
		}
	}

	// Random requests over every tenant, API and route.
	type request struct{ host, path, method []byte }
	reqs := make([]request, 1<<16)
	for i := range reqs {
		s := shards[rand.IntN(len(shards))]
		a := s.Tenant.APIs[rand.IntN(len(s.Tenant.APIs))]
		r := rand.IntN(max(*routesPerAPI, 1))
		reqs[i] = request{host: []byte(s.Tenant.Slug + ".localhost:8000"),
			path: []byte(a.BasePath + "/r" + strconv.Itoa(r) + "/" + strconv.Itoa(rand.IntN(1e6))), method: []byte("GET")}
	}
	apis := make([]*pipeline.API, len(reqs))
	for i, q := range reqs {
		api, ok := rt.Route(q.host, q.path)
		if !ok {
			return fmt.Errorf("no API for %s%s", q.host, q.path)
		}
		apis[i] = api
	}
	runtime.GC()
	// Timed in this thread's CPU time: other programs on the machine
	// taking the core would inflate wall time.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Host and API.
	n := 0
	start = time.Now()
	c0 := threadCPU()
	for time.Since(start) < time.Second {
		for _, q := range reqs {
			rt.Route(q.host, q.path)
		}
		n += len(reqs)
	}
	m.hostAPINs = float64(threadCPU()-c0) / float64(n)
	// Route, on the API found.
	rs := make([]*router.Routes, len(reqs))
	for i, a := range apis {
		rs[i] = routes[a.Config.ID]
	}
	n = 0
	start = time.Now()
	c0 = threadCPU()
	for time.Since(start) < time.Second {
		for i, q := range reqs {
			if res, _ := rs[i].Match(q.method, router.StripPrefix(q.path, apis[i].Config.BasePath)); res != router.RouteMatched {
				return fmt.Errorf("route of %s%s not found", q.host, q.path)
			}
		}
		n += len(reqs)
	}
	m.matchNs = float64(threadCPU()-c0) / float64(n)
	return nil
}

// threadCPU is the CPU time of the calling thread in nanoseconds.
func threadCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// rusageThread is RUSAGE_THREAD (Linux).
const rusageThread = 1
