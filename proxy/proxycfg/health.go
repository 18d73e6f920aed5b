package proxycfg

import (
	"errors"
	"strings"
	"time"
)

// Live target health crosses from the workers to the control plane in two
// kinds of Redis keys:
//
//   - one hash per tenant (Keys.TargetHealth), in which every worker keeps
//     its own view of every target of the tenant it serves: field
//     TargetHealthField(upstreamID, targetURL, workerID), that is
//     "<upstreamID>|<targetURL>|<workerID>" (upstream ids and worker ids
//     contain no "|"; the target URL is everything between the first and
//     the last "|"), value the JSON of a TargetHealthReport;
//   - one heartbeat per worker (Keys.TargetHealthBeat), the JSON of a
//     TargetHealthBeat that expires three heartbeats after it was written.
//
// A worker writes a target's field when it starts serving the target and
// as soon as the target's state changes (healthy, ejected, probed for the
// first time; a new error text of a failing target waits for the next
// heartbeat), not on a timer: with nothing changing, a worker writes its
// heartbeat and nothing else, whatever the number of targets. A live heartbeat vouches for all of its
// worker's fields. Besides, a worker rewrites its whole view every
// TargetHealthRefresh, which also refreshes each hash's TTL
// (TargetHealthTTL), and at once when it finds its heartbeat gone (Redis
// lost its data). It deletes its fields of targets it no longer serves,
// and all of its fields and its heartbeat when it stops.
//
// A reader takes a field as current while its worker's heartbeat lives,
// or while the report's CheckedAt is younger than TargetHealthStale (a
// worker from before the heartbeat rewrote every field every 2 s). Any
// other field is a dead (or gone) worker's view, which readers ignore and
// may delete. Redis (before 7.4) has no per-field TTL: the hash itself
// expires only once no worker of the tenant refreshes it.

// Defaults of target health reporting.
const (
	// TargetHealthHeartbeat is how often a worker writes its heartbeat.
	TargetHealthHeartbeat = 30 * time.Second
	// TargetHealthStale is three heartbeats: a heartbeat's TTL, and the
	// age past which a report without a live heartbeat is stale.
	TargetHealthStale = 3 * TargetHealthHeartbeat
	// TargetHealthRefresh is how often a worker rewrites its whole view
	// even though nothing changed.
	TargetHealthRefresh = 20 * time.Minute
	// TargetHealthTTL is the TTL of a tenant's hash, refreshed by every
	// write to it; longer than TargetHealthRefresh, so that a hash lives
	// while a worker serves the tenant.
	TargetHealthTTL = time.Hour
)

// TargetHealth is the Redis hash of a tenant's live target health, one
// field per (upstream, target, worker).
func (k Keys) TargetHealth(tenantID string) string {
	return k.Prefix + "tollgate:health:" + tenantID
}

// TargetHealthBeat is the key of a worker's target health heartbeat. The
// hash tag puts every worker's heartbeat in one Cluster slot, so that a
// reader fetches those of a tenant's workers with one MGET.
func (k Keys) TargetHealthBeat(workerID string) string {
	return k.Prefix + "{tollgate:health:beat}:" + workerID
}

// TargetHealthBeat is a worker's heartbeat: its fields in the
// TargetHealth hashes are current while the key lives.
type TargetHealthBeat struct {
	// At is when the worker wrote it (its clock).
	At time.Time `json:"at"`
	// IntervalMS is the worker's heartbeat period; the key expires after
	// three of them.
	IntervalMS int64 `json:"interval_ms"`
}

// TargetHealthReport is one worker's view of one target.
type TargetHealthReport struct {
	// Healthy is the active health check's verdict; a target without an
	// active check is healthy.
	Healthy bool `json:"healthy"`
	// Ejected reports that passive outlier detection took the target out
	// of rotation on this worker.
	Ejected bool `json:"ejected"`
	// LastCheck is when the last active probe before the report was
	// written ended (zero: never probed, e.g. no active check configured).
	LastCheck time.Time `json:"last_check,omitzero"`
	// LastError is why the last failing probe failed; "" after a success.
	LastError string `json:"last_error,omitempty"`
	// CheckedAt is when the worker wrote this report (its clock). A reader
	// may move it to the worker's last heartbeat, which vouches for it.
	CheckedAt time.Time `json:"checked_at"`
}

// TargetHealthField is the hash field of a worker's view of a target.
func TargetHealthField(upstreamID, targetURL, workerID string) string {
	return upstreamID + "|" + targetURL + "|" + workerID
}

// ParseTargetHealthField splits a TargetHealth hash field into its parts.
func ParseTargetHealthField(field string) (upstreamID, targetURL, workerID string, err error) {
	first := strings.IndexByte(field, '|')
	last := strings.LastIndexByte(field, '|')
	if first <= 0 || last <= first+1 || last == len(field)-1 {
		return "", "", "", errors.New("proxycfg: malformed target health field")
	}
	return field[:first], field[first+1 : last], field[last+1:], nil
}
