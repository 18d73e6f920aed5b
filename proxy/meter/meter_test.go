package meter

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

func readStream(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys) (batches []string, rows []proxycfg.UsageRow) {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), keys.UsageStream(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		batches = append(batches, m.Values[proxycfg.UsageBatchField].(string))
		var rs []proxycfg.UsageRow
		if err := json.Unmarshal([]byte(m.Values[proxycfg.UsageField].(string)), &rs); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, rs...)
	}
	return batches, rows
}

func TestAggregatesAndFlushes(t *testing.T) {
	t.Parallel()
	testredis.Each(t, func(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys) {
		m, err := New(Options{Redis: rdb, Keys: keys, WorkerID: "w1"})
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 11, 27, 10, 0, 30, 0, time.UTC)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range 250 {
					m.Record(&Sample{At: at, TenantID: "t", APIID: "a", KeyID: "k", ConsumerID: "c", PlanID: "p",
						Status: 200 + 300*(i%2), BytesIn: 1, BytesOut: 10, Latency: time.Duration(g+1) * time.Millisecond})
				}
			})
		}
		wg.Wait()
		m.Record(&Sample{At: at.Add(time.Minute), TenantID: "t", APIID: "a", Status: 404})
		m.Record(&Sample{At: at, Status: 404}) // unrouted: not metered
		if err := m.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := m.Flush(context.Background()); err != nil { // nothing new: no entry
			t.Fatal(err)
		}
		batches, rows := readStream(t, rdb, keys)
		if len(batches) != 1 || batches[0] != "w1-1" {
			t.Fatalf("batches %v", batches)
		}
		got := map[int]proxycfg.UsageRow{}
		for _, r := range rows {
			cur := got[r.StatusClass]
			cur.Requests += r.Requests
			cur.BytesOut += r.BytesOut
			cur.Minute = r.Minute
			for i, c := range r.Latency {
				cur.Latency[i] += c
			}
			got[r.StatusClass] = cur
		}
		if got[2].Requests != 500 || got[5].Requests != 500 || got[4].Requests != 1 || got[2].BytesOut != 5000 {
			t.Fatalf("rows %+v", got)
		}
		if got[2].Minute != at.Unix()-30 {
			t.Fatalf("minute %d", got[2].Minute)
		}
		// Latencies 1..4 ms fall in the buckets (0,1], (1,2], (2,5].
		if h := got[2].Latency; h[0] != 125 || h[1] != 125 || h[2] != 250 {
			t.Fatalf("histogram %v", h)
		}
		if m.Sent() != 1001 {
			t.Fatalf("sent %d", m.Sent())
		}
	})
}

func TestKeepsBatchesWhileRedisFails(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 50 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	m, err := New(Options{Redis: rdb, WorkerID: "w", MaxPending: 2, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m.Record(&Sample{At: time.Now(), TenantID: "t", APIID: "a", KeyID: string(rune('a' + i)), Status: 200})
		if err := m.Flush(context.Background()); err == nil {
			t.Fatal("flush to a dead redis succeeded")
		}
	}
	// Each flush made a one-row batch; with room for 2 rows the oldest went.
	if len(m.queue) != 2 || m.queue[0].id != "w-2" || m.queue[1].id != "w-3" || m.Dropped() != 1 {
		t.Fatalf("queue %+v, dropped %d", m.queue, m.Dropped())
	}
}

func TestRunFlushesOnShutdown(t *testing.T) {
	t.Parallel()
	rdb, keys := testredis.New(t)
	m, err := New(Options{Redis: rdb, Keys: keys, WorkerID: "w", Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	m.Record(&Sample{At: time.Now(), TenantID: "t", APIID: "a", Status: 204})
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("run: %v", err)
	}
	if _, rows := readStream(t, rdb, keys); len(rows) != 1 || rows[0].Requests != 1 {
		t.Fatalf("rows after shutdown %+v", rows)
	}
}

func BenchmarkRecord(b *testing.B) {
	rdb := redis.NewClient(&redis.Options{Addr: testredis.Addr()})
	defer rdb.Close()
	m, err := New(Options{Redis: rdb, WorkerID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		s := Sample{At: now, TenantID: "tenant", APIID: "api", KeyID: "key", ConsumerID: "c", PlanID: "p",
			Status: 200, BytesIn: 10, BytesOut: 100, Latency: time.Millisecond}
		for pb.Next() {
			m.Record(&s)
		}
	})
}
