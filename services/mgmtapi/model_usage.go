package mgmtapi

import (
	"encoding/json"
	"time"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/health"
	"github.com/tollgate/tollgate/services/usage"
)

// UsageSeries answers GET /v1/usage.
type UsageSeries struct {
	Bucket string       `json:"bucket" enum:"minute,hour,day"`
	From   time.Time    `json:"from" doc:"the first bucket's start"`
	To     time.Time    `json:"to" doc:"the end of the last bucket"`
	Points []UsagePoint `json:"points" doc:"one per bucket, empty buckets included"`
}

func (UsageSeries) schemaDoc() string {
	return "Proxied requests per time bucket, from the per-minute rollups."
}

// UsagePoint is one bucket of a usage series.
type UsagePoint struct {
	Start        time.Time `json:"start"`
	Requests     int64     `json:"requests" doc:"every request (1xx and 3xx count here only)"`
	Status2xx    int64     `json:"status_2xx"`
	Status4xx    int64     `json:"status_4xx"`
	Status5xx    int64     `json:"status_5xx"`
	BytesIn      int64     `json:"bytes_in" doc:"request body bytes"`
	BytesOut     int64     `json:"bytes_out" doc:"response body bytes"`
	LatencyAvgMS float64   `json:"latency_avg_ms"`
	LatencyP50MS float64   `json:"latency_p50_ms" doc:"estimated from the per-minute histogram"`
	LatencyP99MS float64   `json:"latency_p99_ms" doc:"estimated from the per-minute histogram"`
}

func (UsagePoint) schemaDoc() string {
	return "One time bucket of proxied requests; all 0 for an empty bucket."
}

// TopConsumers answers GET /v1/usage/top-consumers.
type TopConsumers struct {
	Items []ConsumerTotal `json:"items" doc:"most requests first"`
}

func (TopConsumers) schemaDoc() string { return "The consumers with the most requests in the range." }

// ConsumerTotal is one consumer's traffic over a range.
type ConsumerTotal struct {
	ConsumerID string `json:"consumer_id" format:"uuid"`
	Name       string `json:"name" doc:"empty if the consumer was deleted"`
	Requests   int64  `json:"requests"`
	Errors     int64  `json:"errors" doc:"4xx and 5xx answers"`
}

func (ConsumerTotal) schemaDoc() string { return "One consumer's traffic over a range." }

// UpstreamHealth answers GET /v1/upstreams/{id}/health.
type UpstreamHealth struct {
	UpstreamID string         `json:"upstream_id" format:"uuid"`
	Targets    []TargetHealth `json:"targets"`
}

func (UpstreamHealth) schemaDoc() string {
	return "Live health of an upstream's targets, aggregated over the proxy workers' reports."
}

// TargetHealth is one target's health over the workers.
type TargetHealth struct {
	URL            string     `json:"url" format:"uri"`
	Status         string     `json:"status" enum:"healthy,degraded,down,unknown" doc:"healthy: on every reporting worker; degraded: on some; down: on none; unknown: no worker reported recently"`
	Workers        int        `json:"workers" doc:"proxy workers with a fresh report on the target"`
	HealthyWorkers int        `json:"healthy_workers" doc:"workers that find it healthy and send it traffic"`
	EjectedWorkers int        `json:"ejected_workers" doc:"workers whose outlier detection ejected it"`
	FailingWorkers int        `json:"failing_workers" doc:"workers whose active health check finds it failing"`
	LastError      string     `json:"last_error,omitempty" doc:"the latest probe error of a failing worker"`
	LastCheck      *time.Time `json:"last_check,omitempty" doc:"the latest active probe of any worker"`
	LastSeen       *time.Time `json:"last_seen,omitempty" doc:"the latest report of any worker"`
}

func (TargetHealth) schemaDoc() string { return "One target's health as the proxy workers see it." }

// AuditEntry is one change in the tenant's audit log.
type AuditEntry struct {
	ID           string          `json:"id" format:"uuid"`
	TenantID     string          `json:"tenant_id" format:"uuid"`
	Actor        string          `json:"actor" doc:"who made the change: admin_token:<id>:<prefix>, operator, developer:<id>, system:..."`
	Action       string          `json:"action" doc:"resource.verb: upstream.create, key.revoke, ..."`
	ResourceType string          `json:"resource_type"`
	ResourceID   string          `json:"resource_id"`
	Data         json.RawMessage `json:"data" type:"object" doc:"a summary of the change, secrets left out"`
	At           time.Time       `json:"at"`
}

func (AuditEntry) schemaDoc() string { return "One change in the tenant's audit log." }

func usageSeriesOf(bucket string, from, to time.Time, pts []usage.Point) UsageSeries {
	return UsageSeries{Bucket: bucket, From: from, To: to, Points: mapSlice(pts, func(p usage.Point) UsagePoint {
		return UsagePoint{Start: p.Start, Requests: p.Requests, Status2xx: p.Status2xx, Status4xx: p.Status4xx,
			Status5xx: p.Status5xx, BytesIn: p.BytesIn, BytesOut: p.BytesOut, LatencyAvgMS: p.LatencyAvgMS,
			LatencyP50MS: p.LatencyP50MS, LatencyP99MS: p.LatencyP99MS}
	})}
}

func consumerTotalOf(c usage.ConsumerTotal) ConsumerTotal {
	return ConsumerTotal{ConsumerID: c.ConsumerID, Name: c.Name, Requests: c.Requests, Errors: c.Errors}
}

func targetHealthOf(t health.Target) TargetHealth {
	return TargetHealth{URL: t.URL, Status: t.Status, Workers: t.Workers, HealthyWorkers: t.HealthyWorkers,
		EjectedWorkers: t.EjectedWorkers, FailingWorkers: t.FailingWorkers, LastError: t.LastError,
		LastCheck: clonePtr(t.LastCheck), LastSeen: clonePtr(t.LastSeen)}
}

func auditEntryOf(e audit.Entry) AuditEntry {
	return AuditEntry{ID: e.ID, TenantID: e.TenantID, Actor: e.Actor, Action: e.Action, ResourceType: e.ResourceType,
		ResourceID: e.ResourceID, Data: e.Data, At: e.At}
}
