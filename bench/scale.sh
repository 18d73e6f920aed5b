#!/usr/bin/env bash
# Scale bench (issue 12): what a Tollgate installation costs as it grows,
# against real `tollgate control` and `tollgate proxy` processes. Seeds
# tenants (1 upstream, 10 APIs, a plan, a consumer and keys each) through
# /v1 in steps (100, 1,000, 10,000 tenants, after a baseline of
# 10) and at each step prints the cost of one tenant's change (time to every
# worker, CPU of the control plane, its Postgres backends, Redis and each
# worker), memory, a worker's cold start, /v1 write rate, one tenant's proxy
# requests/s and the route lookup time (see bench/scale/main.go).
#
# Needs the machine's Postgres on 127.0.0.1:5432 (user postgres; database
# tollgate_scale is created and dropped) and redis-server (the bench runs its
# own on a free loopback port; the machine's Redis is not used). Keys past the
# first of each tenant are written in bulk straight into Postgres and reach
# Redis through the publisher's key outbox.
#
# Usage: bench/scale.sh [flags of bench/scale]   e.g. -tenants 100,1000 -keys 100000
#   -tenants "100,1000,10000"  sizes, ascending      -baseline 10   first size, the req/s reference (0: none)
#   -workers 4                 proxy workers          -keys 1000000  keys at the largest size
#   -changes 50                changes for latency    -cpu-changes 150  changes for CPU per change
#   -writes 1200               /v1 writes of the write test
#   -routes 1                  routes per API (1: the base path; more: an imported OpenAPI document)
#   -out bench/out             report directory (scale-<UTC time>.txt)
# About 20 minutes with the defaults on 2 CPUs (most of it seeding 10,000
# tenants through /v1 and publishing 1M key records).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
	awk 'NR > 1 && /^set / { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
	exit 0
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-scale.XXXXXX")"
cleanup() {
	rc=$?
	if [ "$rc" -eq 0 ]; then
		rm -rf "$work"
	else
		echo "scale: failed; logs kept in $work/run/logs" >&2
	fi
}
trap cleanup EXIT
"$repo_root/deploy/local/services.sh"
cd "$repo_root"
go build -o "$work/tollgate" ./cmd/tollgate
go build -o "$work/scale" ./bench/scale
"$work/scale" -tollgate "$work/tollgate" -work "$work/run" -out "$repo_root/bench/out" "$@"
