// Command scale measures what a Tollgate installation costs as it grows
// (issue 12): real `tollgate control` and `tollgate proxy` processes, the
// machine's Postgres (a database of the bench's own) and a private
// redis-server, grown in steps (by default 100, 1,000 and 10,000 tenants,
// each with one upstream, 10 APIs of -routes routes, a plan, a consumer and
// -keys/largest-step keys) and measured at each step:
//
//   - one change of one tenant (PATCH of an API's timeout through /v1):
//     the time until the publisher announces it and until every worker
//     serves it (p50/p99), and the CPU it costs the control plane, its
//     Postgres backends, Redis and each worker (CPU over a run of changes,
//     less what the same processes spend idle over the same time);
//   - RSS of the control plane and of each worker, Redis used_memory, the
//     config in Redis (all shards, and one tenant's);
//   - a worker's cold start (exec to the first 200 through it), idle
//     worker CPU;
//   - /v1 writes per second at 12 in flight, and the seeding rate;
//   - requests per second of one tenant's key-auth API through one worker,
//     and the worker's CPU per request;
//   - route lookup (host → tenant → API by base path → route), in the
//     bench on a runtime composed from every shard in Redis.
//
// Tenants and their gateway objects are seeded through /v1; keys past the
// first of each tenant are written in bulk straight into Postgres (keys and
// the key outbox, in the form the catalog writes them) and reach Redis
// through the publisher's key outbox, as keys made through /v1 do. Run it
// through bench/scale.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	binary      = flag.String("tollgate", "./tollgate", "path of the tollgate binary")
	redisBin    = flag.String("redis-server", "redis-server", "redis-server binary; the bench runs its own on a free loopback port")
	postgresURL = flag.String("postgres", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"maintenance database of the Postgres server; the bench creates and drops database "+dbName+" on it")
	workDir      = flag.String("work", "", "directory for logs and worker state (default: a new temporary one)")
	outDir       = flag.String("out", "bench/out", "directory of the report (scale-<UTC time>.txt)")
	tenantsFlag  = flag.String("tenants", "100,1000,10000", "platform sizes to measure, in tenants, ascending")
	baseline     = flag.Int("baseline", 10, "also measure at this many tenants first (the reference of proxy requests/s); 0: no")
	workers      = flag.Int("workers", 4, "proxy workers")
	routesPerAPI = flag.Int("routes", 1, "routes per API: 1 is its base path (100,000 routes at 10,000 tenants, as issue 12 sizes it); more imports an OpenAPI document of that many operations into every API")
	keysTotal    = flag.Int("keys", 1_000_000, "API keys at the largest size (spread evenly over the tenants; every size has as many per tenant)")
	inFlight     = flag.Int("concurrency", 12, "/v1 calls in flight when seeding and in the write test")
	changes      = flag.Int("changes", 50, "changes of one tenant per size, for the latency figures")
	cpuChanges   = flag.Int("cpu-changes", 150, "changes of one tenant per size, for the CPU figures (more than for latency: the idle CPU taken off is noisy)")
	writeCalls   = flag.Int("writes", 1200, "/v1 writes of the write test per size")
	loadFor      = flag.Duration("load", 4*time.Second, "each round of proxy load")
	loadRounds   = flag.Int("load-rounds", 5, "rounds of proxy load (the report gives the median and the best: other processes of the machine only ever slow a round down)")
	loadConns    = flag.Int("connections", 32, "proxy load client connections")
	idleFor      = flag.Duration("idle", 10*time.Second, "idle time measured for the baseline CPU")
	keepDB       = flag.Bool("keep", false, "keep the database and the work directory at the end")
	profileDir   = flag.String("profile", "", "if set, workers serve pprof and worker 1's CPU profile over each size's CPU-per-change run is saved here (worker-<tenants>.pprof)")
)

const dbName = "tollgate_scale"

func main() {
	flag.Parse()
	log.SetFlags(log.Ltime)
	log.SetPrefix("scale: ")
	sizes, err := parseSizes(*tenantsFlag, *baseline)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, sizes); err != nil {
		log.Fatal(err)
	}
}

func parseSizes(list string, base int) ([]int, error) {
	var sizes []int
	if base > 0 {
		sizes = append(sizes, base)
	}
	for f := range strings.SplitSeq(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-tenants: %q is not a positive number", f)
		}
		sizes = append(sizes, n)
	}
	if !slices.IsSorted(sizes) {
		return nil, fmt.Errorf("-tenants (with -baseline first) must ascend: %v", sizes)
	}
	return slices.Compact(sizes), nil
}

func run(ctx context.Context, sizes []int) (err error) {
	dir := *workDir
	if dir == "" {
		d, err := os.MkdirTemp("", "tollgate-scale.")
		if err != nil {
			return err
		}
		dir = d
	}
	if err := os.RemoveAll(filepath.Join(dir, "redis")); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return err
	}
	log.Printf("work directory %s", dir)
	b, err := newBench(ctx, dir)
	if err != nil {
		return err
	}
	// A failed run keeps its logs (and the database).
	defer func() { b.close(*keepDB || err != nil) }()
	keysPerTenant := max(*keysTotal/sizes[len(sizes)-1], 1)
	rep := &report{sizes: sizes, workers: *workers, keysPerTenant: keysPerTenant, started: time.Now().UTC()}
	for _, n := range sizes {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Printf("== growing to %d tenants", n)
		m, err := b.grow(ctx, n, keysPerTenant)
		if err != nil {
			return fmt.Errorf("grow to %d tenants: %w", n, err)
		}
		log.Printf("== measuring at %d tenants", n)
		if err := b.measure(ctx, m); err != nil {
			return fmt.Errorf("measure at %d tenants: %w", n, err)
		}
		rep.add(m)
		// Print what we have after every size: a long run that fails
		// late still says something.
		fmt.Println(rep.String())
	}
	return rep.write(*outDir)
}
