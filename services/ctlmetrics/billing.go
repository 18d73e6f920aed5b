package ctlmetrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Billing's counters are kept by billing itself (billing.WebhookStats,
// metering.SenderStats: services never import billing) and read here at
// scrape time through their Snapshot methods, by name.

// webhookOutcomes maps billing.WebhookStats' counter names to the outcome
// label of tollgate_control_webhook_receipts_total; "failed" is
// tollgate_control_webhook_failures_total and "received" their sum.
var webhookOutcomes = map[string]string{
	"applied":        "applied",
	"duplicate":      "duplicate",
	"stale":          "stale",
	"wrong_account":  "wrong-account",
	"wrong_mode":     "wrong-mode",
	"unknown_object": "unknown-object",
	"ignored":        "ignored",
	"bad_signature":  "bad-signature",
}

// meterOutcomes are metering.SenderStats' counter names, the outcome label
// of tollgate_control_meter_reports_total.
var meterOutcomes = []string{"sent", "refused", "expired", "retried"}

// snapshotCollector reports the counters of a Snapshot function.
type snapshotCollector struct {
	snapshot func() map[string]int64
	collect  func(counts map[string]int64, ch chan<- prometheus.Metric)
	descs    []*prometheus.Desc
}

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) { c.collect(c.snapshot(), ch) }

// WatchWebhooks reports the Stripe webhook's deliveries from snapshot
// (billing.Service.Stats.Snapshot): receipts by outcome (applied,
// duplicate, stale, wrong-account, wrong-mode, unknown-object, ignored,
// bad-signature) and failures (answered 500, so Stripe retries). Call it
// once, when billing is on.
func (m *Metrics) WatchWebhooks(snapshot func() map[string]int64) error {
	if m == nil {
		return nil
	}
	receipts := prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "webhook_receipts_total"),
		"Stripe webhook deliveries answered, by outcome: applied, duplicate (a replay), stale (older than the "+
			"state applied), wrong-account, wrong-mode, unknown-object, ignored (a type billing does not handle), "+
			"bad-signature.",
		[]string{"outcome"}, nil)
	failures := prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "webhook_failures_total"),
		"Stripe webhook deliveries that failed to apply (answered 500: Stripe retries them).", nil, nil)
	return m.reg.Register(&snapshotCollector{snapshot: snapshot, descs: []*prometheus.Desc{receipts, failures},
		collect: func(counts map[string]int64, ch chan<- prometheus.Metric) {
			for name, outcome := range webhookOutcomes {
				ch <- prometheus.MustNewConstMetric(receipts, prometheus.CounterValue, float64(counts[name]), outcome)
			}
			ch <- prometheus.MustNewConstMetric(failures, prometheus.CounterValue, float64(counts["failed"]))
		}})
}

// WatchMeterReports reports the meter reports this replica's sender marked,
// from snapshot (metering.Sender.Stats().Snapshot), by outcome: sent,
// refused (by Stripe, for good), expired (too old for Stripe) and retried
// (failed attempts left pending). Call it once, when billing is on.
func (m *Metrics) WatchMeterReports(snapshot func() map[string]int64) error {
	if m == nil {
		return nil
	}
	desc := prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "meter_reports_total"),
		"Meter reports (metered usage for Stripe) this replica's sender marked, by outcome: sent, refused (by "+
			"Stripe, for good), expired (older than Stripe accepts), retried (failed attempts left pending).",
		[]string{"outcome"}, nil)
	return m.reg.Register(&snapshotCollector{snapshot: snapshot, descs: []*prometheus.Desc{desc},
		collect: func(counts map[string]int64, ch chan<- prometheus.Metric) {
			for _, outcome := range meterOutcomes {
				ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(counts[outcome]), outcome)
			}
		}})
}
