package usage

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/storetest"
)

// countingObserver is an AggregatorObserver that sums what it is told.
type countingObserver struct {
	mu             sync.Mutex
	entries, rows  int
	newest         time.Time
	batches, fails int
}

func (o *countingObserver) Committed(entries, rows int, newest time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.batches++
	o.entries += entries
	o.rows += rows
	o.newest = newest
}

func (o *countingObserver) Failed() { o.mu.Lock(); o.fails++; o.mu.Unlock() }

// TestObserverCounts: the observer hears of each folded batch, its
// entries and rows and when its newest entry was added; redelivered
// entries add entries but no rows.
func TestObserverCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	rdb, keys := storetest.NewRedis(t)
	obs := &countingObserver{}
	a := newAggregator(t, db, rdb, keys, "obs")
	a.opts.Observer = obs
	base := time.Now().UTC().Truncate(time.Minute)
	xadd(t, rdb, keys, row(base, tenantA, consumer1, key1, 2, 1, 2), row(base, tenantA, consumer2, key2, 2, 1, 2))
	last := xadd(t, rdb, keys, row(base, tenantA, consumer1, key1, 4, 1, 2))
	if n, err := a.Step(ctx); err != nil || n != 2 {
		t.Fatalf("step: %d entries, %v", n, err)
	}
	if obs.batches != 1 || obs.entries != 2 || obs.rows != 3 {
		t.Fatalf("observer heard %d batches, %d entries, %d rows; want 1, 2, 3", obs.batches, obs.entries, obs.rows)
	}
	if obs.newest.IsZero() || !obs.newest.Equal(entryTime(last)) {
		t.Fatalf("newest entry at %v, want %v (from id %s)", obs.newest, entryTime(last), last)
	}
	if d := time.Since(obs.newest); d < 0 || d > time.Minute {
		t.Fatalf("newest entry %v ago", d)
	}
}
