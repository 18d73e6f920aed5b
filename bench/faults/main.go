// Command faults measures how Tollgate behaves under load when things
// change or break, against real `tollgate proxy` and `tollgate control`
// processes, a private redis-server and the machine's Postgres behind a
// TCP proxy the bench can cut:
//
//   - the share of requests each target gets under every balancing algorithm;
//   - failed requests while the config changes under load (targets added
//     and removed every 200ms);
//   - failed requests when a target is killed under load, before passive
//     health ejects it (with and without retries);
//   - failed requests when a worker gets SIGTERM, and when it gets SIGKILL,
//     behind a client-side round-robin balancer of two workers that follows
//     /readyz (as a load balancer does), and how long the restarted worker
//     takes to serve again;
//   - failed requests when Redis is SIGKILLed for a while and restarted, and
//     how long until every worker uses it again;
//   - failed requests of the data plane and answers of /v1 while the control
//     plane's Postgres is cut off, and how long /v1 takes to answer again;
//   - a worker restarted while Redis is down: it serves from the snapshot in
//     its state directory.
//
// Every scenario ends in one line of a summary table: requests, failed
// requests by status, and the recovery time. Snapshots are published
// straight to Redis (the proxycfg contract) for every scenario but the
// Postgres one, which runs a control plane. Run it through bench/faults.sh.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/configsync/seed"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

var (
	binary      = flag.String("tollgate", "./tollgate", "path of the tollgate binary")
	redisBin    = flag.String("redis-server", "redis-server", "redis-server binary; the bench runs its own on a free loopback port")
	postgresURL = flag.String("postgres", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		`Postgres server for the control plane (the bench creates and drops database tollgate_faults on it and puts a TCP proxy in front); "off" skips that scenario`)
	workDir    = flag.String("work", "", "directory for Redis data, worker state directories and logs (default: a new temporary one, removed after a successful run)")
	portBase   = flag.Int("port-base", 19300, "first loopback port of the workers and backends")
	conns      = flag.Int("connections", 32, "client connections")
	loadFor    = flag.Duration("duration", 6*time.Second, "load of each scenario outside its fault: a third before, a third after (and a third during the short faults)")
	downFor    = flag.Duration("down", 5*time.Second, "how long Redis, Postgres and a SIGKILLed worker stay down")
	sharePicks = flag.Int("share-requests", 20000, "requests per algorithm for the share table")
	only       = flag.String("only", "", "comma-separated scenarios to run (default all): shares, config, target, sigterm, sigkill, redis, postgres, restart")
)

const (
	apiKey      = "faults-bench-key"
	redisPrefix = "tollgate-faults:"
	// controlPrefix is the control plane's key prefix in the same Redis.
	controlPrefix = "tollgate-faults-cp:"
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("faults: ")
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

type bench struct {
	dir      string
	secret   string
	redis    *redisServer
	rdb      *redis.Client
	keys     proxycfg.Keys
	gen      int64
	backends []*backend
	rows     []row
}

// row is one line of the summary table.
type row struct {
	scenario string
	res      result
	recovery time.Duration
	// from says what the recovery time is measured from and to; "" when
	// the scenario has none.
	from string
}

func run() (err error) {
	ctx := context.Background()
	dir := *workDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "tollgate-faults-"); err != nil {
			return err
		}
		defer func() {
			if err == nil {
				os.RemoveAll(dir)
			} else {
				log.Printf("logs kept in %s", dir)
			}
		}()
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return err
	}
	b := &bench{dir: dir, secret: randHex(32), keys: proxycfg.Keys{Prefix: redisPrefix}}
	if b.redis, err = startRedis(*redisBin, dir); err != nil {
		return err
	}
	defer b.redis.kill()
	b.rdb = redis.NewClient(&redis.Options{Addr: b.redis.addr})
	defer b.rdb.Close()
	rec, _ := json.Marshal(proxycfg.KeyRecord{ID: "k1", TenantID: "t1", ConsumerID: "c1", PlanID: "p1", Status: proxycfg.KeyActive})
	if err := b.rdb.Set(ctx, b.keys.Key(proxycfg.Digest([]byte(b.secret), apiKey)), rec, 0).Err(); err != nil {
		return fmt.Errorf("put key: %w", err)
	}
	for i := range 3 {
		be, err := startBackend(fmt.Sprintf("b%d", i+1), *portBase+10+i)
		if err != nil {
			return err
		}
		defer be.stop()
		b.backends = append(b.backends, be)
	}
	// The third backend is slower (least_conn should send it less).
	b.backends[2].delay.Store(int64(2 * time.Millisecond))

	w1 := newWorker(b, "1", *portBase+1, *portBase+2, redisPrefix)
	w2 := newWorker(b, "2", *portBase+3, *portBase+4, redisPrefix)
	for _, w := range []*worker{w1, w2} {
		if err := w.start(); err != nil {
			return err
		}
		defer w.kill()
	}

	fmt.Printf("Tollgate fault bench, %s, %d client connections, %s of load per scenario besides its fault, faults %s, all on loopback\n",
		time.Now().UTC().Format(time.RFC3339), *conns, *loadFor, *downFor)
	fmt.Printf("proxy: key auth + rate limit (never triggered) on every request; private redis-server on %s (AOF, fsync every second)\n", b.redis.addr)
	fmt.Printf("client: no retries of its own; with two workers, a round-robin balancer that follows /readyz every 100ms,\n")
	fmt.Printf("        drops a worker on a transport error and resends only requests refused at connect (they reached no worker)\n\n")
	steps := []struct {
		name string
		run  func() error
	}{
		{"shares", func() error { return b.shares(ctx, w1) }},
		{"config", func() error { return b.configChange(ctx, w1) }},
		{"target", func() error { return b.targetKill(ctx, w1, false) }},
		{"target", func() error { return b.targetKill(ctx, w1, true) }},
		{"sigterm", func() error { return b.workerStop(ctx, w1, w2, false) }},
		{"sigkill", func() error { return b.workerStop(ctx, w1, w2, true) }},
		{"redis", func() error { return b.redisKill(ctx, w1, w2) }},
		{"postgres", func() error { return b.postgresCut(ctx) }},
		{"restart", func() error { return b.restartWithoutRedis(ctx, w1) }},
	}
	for _, step := range steps {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), step.name) {
			continue
		}
		if err := step.run(); err != nil {
			b.summary()
			return err
		}
	}
	b.summary()
	return nil
}

// summary prints the table of every scenario run so far.
func (b *bench) summary() {
	fmt.Println("== summary")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\trequests\tfailed\tby status\trecovery\tmeasured from → to")
	for _, r := range b.rows {
		rec := "-"
		if r.from != "" {
			rec = fmt.Sprintf("%.2f s", r.recovery.Seconds())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.scenario, thousands(r.res.total()), thousands(r.res.failed),
			r.res.statuses(), rec, r.from)
	}
	tw.Flush()
	fmt.Println()
}

func (b *bench) add(r row) { b.rows = append(b.rows, r) }

// publish stores a config with one tenant "acme", one upstream, a
// key-auth API at "/" and an API without auth at "/open", and announces it.
func (b *bench) publish(ctx context.Context, up proxycfg.Upstream) (int64, error) {
	b.gen++
	up.ID = "u1"
	snap := proxycfg.Snapshot{Schema: proxycfg.SchemaVersion, Generation: b.gen, CompiledAt: time.Now().UTC(),
		Tenants: []proxycfg.Tenant{{ID: "t1", Slug: "acme", Upstreams: []proxycfg.Upstream{up},
			APIs: []proxycfg.API{
				{ID: "a1", Slug: "api", Name: "API", BasePath: "/", UpstreamID: "u1", Auth: proxycfg.AuthKey},
				{ID: "a2", Slug: "open", Name: "Open", BasePath: "/open", UpstreamID: "u1", Auth: proxycfg.AuthNone},
			},
			Plans: []proxycfg.Plan{{ID: "p1", Name: "bench", RateLimit: proxycfg.RateLimit{Requests: 1 << 40, PerSeconds: 1},
				APIIDs: []string{"a1"}}}}}}
	if err := snap.Validate(); err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	// As the control plane publishes it: the index and the tenant's shard
	// (seed), announced.
	if err := seed.Publish(ctx, b.rdb, b.keys, &snap); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	return b.gen, nil
}

// publishWait publishes up and waits until every worker of ws serves it.
func (b *bench) publishWait(ctx context.Context, up proxycfg.Upstream, ws ...*worker) error {
	gen, err := b.publish(ctx, up)
	if err != nil {
		return err
	}
	for _, w := range ws {
		if err := w.waitGen(gen); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) targets(idx ...int) []proxycfg.Target {
	var out []proxycfg.Target
	for _, i := range idx {
		out = append(out, proxycfg.Target{URL: b.backends[i].url, Weight: 1})
	}
	return out
}

// waitFor polls cond every 10ms until it holds (returning when) or within
// passes.
func waitFor(within time.Duration, cond func() bool) (time.Time, bool) {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return time.Now(), true
		}
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recovery is the time from back (the broken part is back, or the fault
// happened when nothing comes back) until everything was normal again:
// normal (the scenario's own check) or the last failed request after
// back, whichever is later.
func recovery(res result, back, normal time.Time) time.Duration {
	end := normal
	if res.lastFail.After(end) {
		end = res.lastFail
	}
	if end.Before(back) {
		return 0
	}
	return end.Sub(back)
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) + " ms" }

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func indent(s string) string { return "   " + strings.ReplaceAll(s, "\n", "\n   ") }
