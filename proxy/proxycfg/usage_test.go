package proxycfg

import (
	"testing"
	"time"
)

func TestQuotaPeriod(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name, period, at, id, start, end string
	}{
		{name: "month", period: "month", at: "2026-11-27T03:00:00Z", id: "2026-11", start: "2026-11-01T00:00:00Z", end: "2026-12-01T00:00:00Z"},
		{name: "default is month", period: "", at: "2026-02-10T00:00:00Z", id: "2026-02", start: "2026-02-01T00:00:00Z", end: "2026-03-01T00:00:00Z"},
		{name: "last instant of a year", period: "month", at: "2026-12-31T23:59:59.999999999Z", id: "2026-12", start: "2026-12-01T00:00:00Z", end: "2027-01-01T00:00:00Z"},
		{name: "new year resets", period: "month", at: "2027-01-01T00:00:00Z", id: "2027-01", start: "2027-01-01T00:00:00Z", end: "2027-02-01T00:00:00Z"},
		{name: "day", period: "day", at: "2026-11-27T23:59:59Z", id: "2026-11-27", start: "2026-11-27T00:00:00Z", end: "2026-11-28T00:00:00Z"},
		{name: "day in UTC whatever the zone", period: "day", at: "2026-11-28T01:00:00+05:00", id: "2026-11-27", start: "2026-11-27T00:00:00Z", end: "2026-11-28T00:00:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, start, end := QuotaPeriod(tc.period, at(tc.at))
			if id != tc.id || !start.Equal(at(tc.start)) || !end.Equal(at(tc.end)) {
				t.Fatalf("got %s [%v, %v)", id, start, end)
			}
		})
	}
}

func TestLatencyBucket(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ms   float64
		want int
	}{
		{name: "zero", ms: 0, want: 0},
		{name: "bound is inclusive", ms: 1, want: 0},
		{name: "just above", ms: 1.001, want: 1},
		{name: "mid", ms: 30, want: 5},
		{name: "slowest bounded", ms: 10000, want: len(LatencyBoundsMS) - 1},
		{name: "open bucket", ms: 60000, want: LatencyBuckets - 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := LatencyBucket(tc.ms); got != tc.want {
				t.Fatalf("LatencyBucket(%v) = %d, want %d", tc.ms, got, tc.want)
			}
		})
	}
}

func TestLimitSubjectAndValidate(t *testing.T) {
	t.Parallel()
	subjects := []struct {
		name, scope, subscription, want string
	}{
		{name: "key", scope: "", want: "k"},
		{name: "key, explicit scope", scope: ScopeKey, want: "k"},
		{name: "key of a subscription", scope: ScopeKey, subscription: "s1", want: "s/s1"},
		{name: "key of a subscription, default scope", subscription: "s1", want: "s/s1"},
		{name: "consumer", scope: ScopeConsumer, want: "c/c/p"},
		{name: "consumer, key of a subscription", scope: ScopeConsumer, subscription: "s1", want: "c/c/p"},
	}
	for _, tc := range subjects {
		if got := LimitSubject(tc.scope, "k", tc.subscription, "c", "p"); got != tc.want {
			t.Errorf("%s: LimitSubject = %q, want %q", tc.name, got, tc.want)
		}
	}
	tests := []struct {
		name string
		rl   RateLimit
		ok   bool
	}{
		{name: "unlimited", rl: RateLimit{}, ok: true},
		{name: "plain", rl: RateLimit{Requests: 10, PerSeconds: 1}, ok: true},
		{name: "burst", rl: RateLimit{Requests: 10, PerSeconds: 1, Burst: 9, Scope: ScopeConsumer}, ok: true},
		{name: "burst not below requests", rl: RateLimit{Requests: 10, PerSeconds: 1, Burst: 10}},
		{name: "no window", rl: RateLimit{Requests: 10}},
		{name: "unknown scope", rl: RateLimit{Requests: 1, PerSeconds: 1, Scope: "tenant"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.rl.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate(%+v) = %v", tc.rl, err)
			}
		})
	}
}
