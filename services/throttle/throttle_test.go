package throttle_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/storetest"
	"github.com/tollgate/tollgate/services/throttle"
)

func TestHitIsAtomicUnderConcurrency(t *testing.T) {
	t.Parallel()
	db := storetest.NewPool(t)
	l := &throttle.Limiter{DB: db}
	rule := throttle.Rule{Max: 5, Window: time.Hour}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed, refused := 0, 0
	for range 40 {
		wg.Go(func() {
			err := l.Hit(context.Background(), "ip:192.0.2.1", rule)
			mu.Lock()
			defer mu.Unlock()
			var te *fault.ThrottledError
			switch {
			case err == nil:
				allowed++
			case errors.As(err, &te):
				if te.RetryAfter <= 0 || te.RetryAfter > time.Hour {
					t.Errorf("RetryAfter = %v", te.RetryAfter)
				}
				refused++
			default:
				t.Errorf("Hit: %v", err)
			}
		})
	}
	wg.Wait()
	if allowed != 5 || refused != 35 {
		t.Fatalf("allowed %d refused %d, want 5 and 35", allowed, refused)
	}
	// Another subject has its own count; a reset clears one.
	if err := l.Hit(context.Background(), "ip:192.0.2.2", rule); err != nil {
		t.Fatalf("other subject: %v", err)
	}
	if err := l.Reset(context.Background(), "ip:192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Hit(context.Background(), "ip:192.0.2.1", rule); err != nil {
		t.Fatalf("after reset: %v", err)
	}
}

func TestWindowsRollOver(t *testing.T) {
	t.Parallel()
	db := storetest.NewPool(t)
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	l := &throttle.Limiter{DB: db, Now: func() time.Time { return now }}
	rule := throttle.Rule{Max: 1, Window: time.Minute}
	if err := l.Hit(context.Background(), "s", rule); err != nil {
		t.Fatal(err)
	}
	if err := l.Hit(context.Background(), "s", rule); err == nil {
		t.Fatal("second hit in the window allowed")
	}
	now = now.Add(time.Minute)
	if err := l.Hit(context.Background(), "s", rule); err != nil {
		t.Fatalf("next window: %v", err)
	}
	if err := l.Prune(context.Background(), time.Minute); err != nil {
		t.Fatal(err)
	}
}
