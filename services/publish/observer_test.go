package publish_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/publish"
)

// recorder is a publish.Observer that keeps what it is told.
type recorder struct {
	mu        sync.Mutex
	snapshots []int64
	bytes     int
	compile   time.Duration
	keys      int
	leading   bool
}

func (r *recorder) SnapshotPublished(gen int64, bytes int, compile, publish time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snapshots = append(r.snapshots, gen)
	r.bytes, r.compile = bytes, compile
}

func (r *recorder) KeysPublished(n int) { r.mu.Lock(); r.keys += n; r.mu.Unlock() }
func (r *recorder) SyncFailed()         {}
func (r *recorder) Leading(on bool)     { r.mu.Lock(); r.leading = on; r.mu.Unlock() }

// TestObserver: the observer hears of each publish (its index sequence,
// size and compile time), of key records and of leadership.
func TestObserver(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	rec := &recorder{}
	p := publish.New(publish.Options{DB: h.db, Redis: h.rdb, Keys: h.keys, PollInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Observer: rec})
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	_, _, _, plan := h.populate()
	consumer, err := h.cat.CreateConsumer(context.Background(), h.who, catalog.ConsumerInput{Name: "c", Email: "c@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.cat.CreateKey(context.Background(), h.who, catalog.KeyInput{ConsumerID: consumer.ID, PlanID: plan.ID}); err != nil {
		t.Fatal(err)
	}
	h.snapshot(h.dbGeneration())
	seq, _, _ := h.index()
	h.eventually("the observer hears of the publish and the key", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.snapshots) > 0 && rec.snapshots[len(rec.snapshots)-1] == seq && rec.keys >= 1
	})
	rec.mu.Lock()
	if rec.bytes == 0 || rec.compile <= 0 || !rec.leading {
		t.Errorf("observer heard bytes %d, compile %v, leading %v", rec.bytes, rec.compile, rec.leading)
	}
	rec.mu.Unlock()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.leading {
		t.Error("a stopped publisher still leads")
	}
}
