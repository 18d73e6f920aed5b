package proxycfg

import (
	"errors"
	"strings"
	"time"
)

// Live target health crosses from the workers to the control plane as one
// Redis hash per tenant (Keys.TargetHealth). Every worker writes its own
// view of every target it serves:
//
//   - field: TargetHealthField(upstreamID, targetURL, workerID), that is
//     "<upstreamID>|<targetURL>|<workerID>" (upstream ids and worker ids
//     contain no "|"; the target URL is everything between the first and
//     the last "|");
//   - value: the JSON of a TargetHealthReport.
//
// A worker rewrites its fields every TargetHealthInterval and as soon as a
// target's state changes, and then refreshes the key's TTL to
// TargetHealthTTL, so the hash disappears once no worker of the tenant
// reports. Redis (before 7.4) has no per-field TTL: a field whose
// CheckedAt is older than TargetHealthTTL is a dead (or gone) worker's
// view, which readers ignore and may delete. A worker deletes its fields
// of targets it no longer serves, and all of its fields when it stops.

// Defaults of target health reporting.
const (
	// TargetHealthInterval is how often a worker rewrites its view.
	TargetHealthInterval = 2 * time.Second
	// TargetHealthTTL is how long a report stays valid: the key's TTL
	// and the age past which a field is stale.
	TargetHealthTTL = 10 * time.Second
)

// TargetHealth is the Redis hash of a tenant's live target health, one
// field per (upstream, target, worker).
func (k Keys) TargetHealth(tenantID string) string {
	return k.Prefix + "tollgate:health:" + tenantID
}

// TargetHealthReport is one worker's view of one target.
type TargetHealthReport struct {
	// Healthy is the active health check's verdict; a target without an
	// active check is healthy.
	Healthy bool `json:"healthy"`
	// Ejected reports that passive outlier detection took the target out
	// of rotation on this worker.
	Ejected bool `json:"ejected"`
	// LastCheck is when the last active probe ended (zero: never probed,
	// e.g. no active check configured).
	LastCheck time.Time `json:"last_check,omitzero"`
	// LastError is why the last failing probe failed; "" after a success.
	LastError string `json:"last_error,omitempty"`
	// CheckedAt is when the worker wrote this report (its clock).
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
