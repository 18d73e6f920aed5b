package health

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// writeCounter counts the Redis commands that write target health: HSET
// field-value pairs (one per target written) and heartbeats (SET).
type writeCounter struct {
	fields, hsets, beats, other atomic.Int64
	otherNames                  sync.Map
}

func (c *writeCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *writeCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.count(cmd)
		return next(ctx, cmd)
	}
}

func (c *writeCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.count(cmd)
		}
		return next(ctx, cmds)
	}
}

func (c *writeCounter) count(cmd redis.Cmder) {
	switch cmd.Name() {
	case "hset":
		c.hsets.Add(1)
		c.fields.Add(int64(len(cmd.Args())-2) / 2)
	case "set":
		c.beats.Add(1)
	case "exists", "pexpire", "hello", "ping", "client", "cluster", "command":
	default:
		c.other.Add(1)
		c.otherNames.Store(cmd.Name(), true)
	}
}

// fleet is the targets a test worker serves, changed by the test.
type fleet struct {
	mu      sync.Mutex
	targets map[string]TargetReport // by tenant/upstream/url
}

func newFleet(tenants, perTenant int) *fleet {
	f := &fleet{targets: map[string]TargetReport{}}
	for i := range tenants {
		for j := range perTenant {
			f.set(TargetReport{TenantID: fmt.Sprintf("t%d", i), UpstreamID: "u1",
				URL: fmt.Sprintf("http://10.0.%d.%d:8080", i/250, j), Status: Status{Healthy: true}})
		}
	}
	return f
}

func (f *fleet) set(t TargetReport) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.targets[t.TenantID+"/"+t.UpstreamID+"/"+t.URL] = t
}

func (f *fleet) remove(t TargetReport) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.targets, t.TenantID+"/"+t.UpstreamID+"/"+t.URL)
}

func (f *fleet) yield(yield func(TargetReport)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.targets {
		yield(t)
	}
}

func readReport(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys, tr TargetReport, worker string) (proxycfg.TargetHealthReport, bool) {
	t.Helper()
	raw, err := rdb.HGet(context.Background(), keys.TargetHealth(tr.TenantID), proxycfg.TargetHealthField(tr.UpstreamID, tr.URL, worker)).Result()
	if err == redis.Nil {
		return proxycfg.TargetHealthReport{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var rep proxycfg.TargetHealthReport
	if err := json.Unmarshal([]byte(raw), &rep); err != nil {
		t.Fatal(err)
	}
	return rep, true
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// TestReporterWritesOnChange runs a reporter over a stable fleet of
// targets and checks what it costs Redis: the targets' reports once, then
// a heartbeat per heartbeat period and nothing else; a flip is written at
// once, an error text at the next heartbeat, a removed target is deleted,
// and a Redis that lost everything gets the whole view back.
func TestReporterWritesOnChange(t *testing.T) {
	t.Parallel()
	testredis.Each(t, func(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys) {
		const (
			tenants, perTenant = 200, 3
			heartbeat          = 500 * time.Millisecond
			stable             = 4 * heartbeat
		)
		var writes writeCounter
		rdb.AddHook(&writes)
		f := newFleet(tenants, perTenant)
		r, err := NewReporter(ReporterOptions{Redis: rdb, Keys: keys, WorkerID: "w1", Targets: f.yield,
			Heartbeat: heartbeat, Poll: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		stopped := false
		stop := func() {
			if !stopped {
				stopped = true
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			}
		}
		t.Cleanup(stop)
		probe := TargetReport{TenantID: "t7", UpstreamID: "u1", URL: "http://10.0.0.1:8080", Status: Status{Healthy: true}}
		eventually(t, 5*time.Second, "first view written", func() bool {
			_, ok := readReport(t, rdb, keys, probe, "w1")
			return ok && rdb.Exists(context.Background(), keys.TargetHealthBeat("w1")).Val() == 1
		})
		if got := writes.fields.Load(); got != tenants*perTenant {
			t.Fatalf("first view: %d reports written, want %d", got, tenants*perTenant)
		}
		if ttl := rdb.PTTL(context.Background(), keys.TargetHealthBeat("w1")).Val(); ttl <= 0 || ttl > 3*heartbeat {
			t.Errorf("heartbeat TTL %v, want within (0, %v]", ttl, 3*heartbeat)
		}

		// Stable: a heartbeat per period, no report.
		fields0, beats0 := writes.fields.Load(), writes.beats.Load()
		time.Sleep(stable)
		fields, beats := writes.fields.Load()-fields0, writes.beats.Load()-beats0
		periods := int64(stable / heartbeat)
		var others []string
		writes.otherNames.Range(func(k, _ any) bool { others = append(others, k.(string)); return true })
		t.Logf("stable for %v (%d heartbeats), %d targets: %d reports and %d heartbeats written (%d other commands, reads included: %v)",
			stable, periods, tenants*perTenant, fields, beats, writes.other.Load(), others)
		if fields != 0 || beats > periods+1 || beats < 1 {
			t.Fatalf("stable fleet: %d reports and %d heartbeats in %d heartbeat periods; want 0 and at most one a period",
				fields, beats, periods)
		}

		// A flip is written at once, alone.
		fields0 = writes.fields.Load()
		down := probe
		down.Status = Status{Healthy: false, LastCheck: time.Now(), LastError: "status 503"}
		f.set(down)
		took := eventually(t, heartbeat, "the flip written before the next heartbeat", func() bool {
			rep, _ := readReport(t, rdb, keys, probe, "w1")
			return !rep.Healthy && rep.LastError == "status 503"
		})
		t.Logf("a flip reached Redis in %v (heartbeat %v)", took, heartbeat)
		if n := writes.fields.Load() - fields0; n != 1 {
			t.Errorf("the flip wrote %d reports, want 1", n)
		}

		// A new error text of a failing target waits for the heartbeat.
		other := down
		other.Status.LastError = "dial tcp: connection refused"
		f.set(other)
		eventually(t, 2*heartbeat, "the new error text written", func() bool {
			rep, _ := readReport(t, rdb, keys, probe, "w1")
			return rep.LastError == other.Status.LastError
		})

		// A target no longer served leaves the view.
		f.remove(probe)
		eventually(t, heartbeat, "the removed target deleted", func() bool {
			_, ok := readReport(t, rdb, keys, probe, "w1")
			return !ok
		})

		// Redis loses everything (a restart without persistence): the
		// heartbeat finds itself gone and the whole view is rewritten.
		for i := range tenants {
			rdb.Del(context.Background(), keys.TargetHealth(fmt.Sprintf("t%d", i)))
		}
		rdb.Del(context.Background(), keys.TargetHealthBeat("w1"))
		back := TargetReport{TenantID: "t199", UpstreamID: "u1", URL: "http://10.0.0.2:8080"}
		eventually(t, 3*heartbeat, "the view rewritten after Redis lost it", func() bool {
			_, ok := readReport(t, rdb, keys, back, "w1")
			return ok
		})

		// Stopping withdraws the view and the heartbeat.
		stop()
		if n := rdb.HLen(context.Background(), keys.TargetHealth("t199")).Val(); n != 0 {
			t.Errorf("after stop the hash has %d fields", n)
		}
		if rdb.Exists(context.Background(), keys.TargetHealthBeat("w1")).Val() != 0 {
			t.Error("after stop the heartbeat is still there")
		}
	})
}

// TestReporterRefresh checks the slow full rewrite, which keeps the hashes'
// TTL alive while nothing changes.
func TestReporterRefresh(t *testing.T) {
	t.Parallel()
	rdb, keys := testredis.New(t)
	var writes writeCounter
	rdb.AddHook(&writes)
	f := newFleet(2, 2)
	r, err := NewReporter(ReporterOptions{Redis: rdb, Keys: keys, WorkerID: "w1", Targets: f.yield,
		Heartbeat: time.Hour, Refresh: 200 * time.Millisecond, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = r.Run(ctx) }()
	eventually(t, 5*time.Second, "three rewrites", func() bool { return writes.fields.Load() >= 3*4 })
	if ttl := rdb.PTTL(context.Background(), keys.TargetHealth("t0")).Val(); ttl <= 0 || ttl > proxycfg.TargetHealthTTL {
		t.Errorf("hash TTL %v, want within (0, %v]", ttl, proxycfg.TargetHealthTTL)
	}
	if !strings.HasPrefix(keys.TargetHealthBeat("w1"), keys.Prefix) {
		t.Errorf("heartbeat key %q outside the prefix", keys.TargetHealthBeat("w1"))
	}
}

// BenchmarkReporterIdlePoll measures one poll of a worker serving 10,000
// targets of which none changed: the CPU a reporter spends every Poll with
// no Redis call.
func BenchmarkReporterIdlePoll(b *testing.B) {
	rdb, keys := testredis.New(b)
	f := newFleet(10000, 1)
	r, err := NewReporter(ReporterOptions{Redis: rdb, Keys: keys, WorkerID: "w1", Targets: f.yield})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := r.publish(ctx, true, false, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := r.publish(ctx, false, false, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReporterReadsOnlyDirtyTenants: with Dirty, a poll with nothing dirty
// reads no target (an idle worker's cost does not grow with its targets),
// a dirty tenant's targets are read and published at the next poll without
// reading any other tenant's (a change costs in proportion to its tenant,
// removed targets included), and the heartbeat still reads everything.
func TestReporterReadsOnlyDirtyTenants(t *testing.T) {
	t.Parallel()
	rdb, keys := testredis.New(t)
	f := newFleet(3, 2)
	var reads, tenantReads atomic.Int64
	var mu sync.Mutex
	var dirty []string
	markDirty := func(id string) {
		mu.Lock()
		defer mu.Unlock()
		dirty = append(dirty, id)
	}
	const heartbeat = 600 * time.Millisecond
	r, err := NewReporter(ReporterOptions{Redis: rdb, Keys: keys, WorkerID: "w1",
		Targets: func(yield func(TargetReport)) {
			reads.Add(1)
			f.yield(yield)
		},
		TenantTargets: func(ids []string, yield func(TargetReport)) {
			f.yield(func(tr TargetReport) {
				if slices.Contains(ids, tr.TenantID) {
					tenantReads.Add(1)
					yield(tr)
				}
			})
		},
		Dirty: func() ([]string, bool) {
			mu.Lock()
			defer mu.Unlock()
			d := dirty
			dirty = nil
			return d, false
		},
		Heartbeat: heartbeat, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = r.Run(ctx) }()
	probe := TargetReport{TenantID: "t1", UpstreamID: "u1", URL: "http://10.0.0.1:8080", Status: Status{Healthy: true}}
	eventually(t, 5*time.Second, "first view written", func() bool {
		_, ok := readReport(t, rdb, keys, probe, "w1")
		return ok
	})
	// About 30 polls within the heartbeat: none reads a target.
	before := reads.Load()
	time.Sleep(300 * time.Millisecond)
	if n := reads.Load() - before; n > 1 || tenantReads.Load() != 0 {
		t.Errorf("%d full reads and %d target reads in 300 ms with nothing dirty", n, tenantReads.Load())
	}
	// A flip of t1, marked dirty: published at once, reading t1's two
	// targets only.
	probe.Status.Healthy = false
	f.set(probe)
	markDirty("t1")
	eventually(t, 2*time.Second, "the flip", func() bool {
		rep, ok := readReport(t, rdb, keys, probe, "w1")
		return ok && !rep.Healthy
	})
	if n := tenantReads.Load(); n != 2 {
		t.Errorf("the dirty tenant's publish read %d targets, want its 2", n)
	}
	// A removed target of t2, marked dirty: deleted.
	gone := TargetReport{TenantID: "t2", UpstreamID: "u1", URL: "http://10.0.0.0:8080"}
	if _, ok := readReport(t, rdb, keys, gone, "w1"); !ok {
		t.Fatal("t2's first target was never published")
	}
	f.remove(gone)
	markDirty("t2")
	eventually(t, 2*time.Second, "the removed target's field deleted", func() bool {
		_, ok := readReport(t, rdb, keys, gone, "w1")
		return !ok
	})
	// The heartbeat reads everything: an unannounced change shows there.
	probe.Status.Healthy = true
	f.set(probe)
	eventually(t, 3*heartbeat, "the change at the heartbeat", func() bool {
		rep, ok := readReport(t, rdb, keys, probe, "w1")
		return ok && rep.Healthy
	})
}
