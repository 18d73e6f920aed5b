package proxycfg

import (
	"strconv"
	"time"
)

// Usage metering crosses from the workers to the control plane as entries of
// one Redis stream (Keys.UsageStream). Each entry carries, in its field
// UsageField, a JSON array of UsageRow: a worker's requests aggregated per
// minute and per (API, consumer, key, plan, status class) over one flush
// interval.

// UsageField is the stream entry field that holds the JSON []UsageRow.
const UsageField = "rows"

// UsageBatchField is the stream entry field that holds the batch's unique
// id (worker id and sequence). A worker that retries an XADD whose answer
// it lost sends the same id, and the aggregator counts a batch id once.
const UsageBatchField = "batch"

// UsageStream is the Redis stream the workers XADD usage batches to and the
// control plane's aggregator reads with a consumer group. It is a single key
// (not one per tenant) so that one consumer group sees all traffic.
func (k Keys) UsageStream() string { return k.Prefix + "tollgate:usage:stream" }

// WorkerRegistry is the sorted set of live proxy workers: member = worker id,
// score = Unix milliseconds of its last heartbeat (Redis clock). A worker
// that cannot reach Redis divides limits by the number of live workers.
func (k Keys) WorkerRegistry() string { return k.Prefix + "tollgate:workers" }

// Quota is the Redis key holding the used count of a quota subject in one
// billing period (period is the period's start, e.g. "2026-11" or
// "2026-11-27"). The hash tag matches RateLimit's so that a subject's keys
// share a Cluster slot.
func (k Keys) Quota(subject, period string) string {
	return k.Prefix + "{tollgate:rl:" + subject + "}:quota:" + period
}

// LatencyBoundsMS are the upper bounds (inclusive, milliseconds) of the
// latency histogram of a UsageRow; the last bucket (index
// len(LatencyBoundsMS)) counts everything slower.
var LatencyBoundsMS = [...]float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}

// LatencyBuckets is the number of buckets of a UsageRow histogram.
const LatencyBuckets = len(LatencyBoundsMS) + 1

// LatencyBucket returns the histogram bucket of a latency in milliseconds.
func LatencyBucket(ms float64) int {
	for i, b := range LatencyBoundsMS {
		if ms <= b {
			return i
		}
	}
	return len(LatencyBoundsMS)
}

// UsageRow is the aggregate of one worker's requests that share a minute
// and the dimensions below. Empty ids mean "none" (auth "none" has no key,
// consumer or plan; an unrouted request has no API and is not metered).
type UsageRow struct {
	// Minute is the start of the minute (Unix seconds, UTC, a multiple of 60)
	// in which the requests arrived, by the worker's clock.
	Minute     int64  `json:"m"`
	TenantID   string `json:"t"`
	APIID      string `json:"a"`
	ConsumerID string `json:"c,omitempty"`
	KeyID      string `json:"k,omitempty"`
	PlanID     string `json:"p,omitempty"`
	// StatusClass is the response status divided by 100 (1..5).
	StatusClass int `json:"s"`
	// Requests is how many requests the row aggregates.
	Requests int64 `json:"n"`
	// BytesIn and BytesOut are request and response body bytes.
	BytesIn  int64 `json:"bi"`
	BytesOut int64 `json:"bo"`
	// LatencyMicros is the sum of the requests' latencies in microseconds.
	LatencyMicros int64 `json:"lus"`
	// Latency counts the requests per LatencyBoundsMS bucket.
	Latency [LatencyBuckets]int64 `json:"h"`
}

// QuotaPeriod returns the billing period of a quota ("day" or "month";
// anything else is taken as "month") that contains t: its id (used in
// Keys.Quota) and its bounds [start, end), calendar periods in UTC. Workers
// and the control plane both use it so that they agree on the counter.
func QuotaPeriod(period string, t time.Time) (id string, start, end time.Time) {
	t = t.UTC()
	if period == "day" {
		start = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		return start.Format("2006-01-02"), start, start.AddDate(0, 0, 1)
	}
	start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	return start.Format("2006-01"), start, start.AddDate(0, 1, 0)
}

// LimitSubject names whose requests share a plan's rate limit, quota and
// concurrency limit. For ScopeKey (or "") it is the subscription,
// "s/<subscriptionID>", when the key belongs to one (all its keys count
// together, so more keys or a rotation never give more quota), else the
// key's id; for ScopeConsumer it is the consumer with the plan, already
// wider than a subscription. Workers and the control plane (which reads
// quota counters) both use it.
func LimitSubject(scope, keyID, subscriptionID, consumerID, planID string) string {
	if scope == ScopeConsumer {
		return "c/" + consumerID + "/" + planID
	}
	if subscriptionID != "" {
		return "s/" + subscriptionID
	}
	return keyID
}

// BillingPeriodID names the quota period of a subscription's billing period
// starting at start (unix seconds), beside QuotaPeriod's calendar ids.
func BillingPeriodID(start int64) string { return "b" + strconv.FormatInt(start, 10) }
