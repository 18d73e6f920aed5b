#!/usr/bin/env bash
# Fault bench: balancing shares per algorithm, and requests lost under load
# during config changes, a target kill, a worker's SIGTERM and SIGKILL, a
# Redis SIGKILL, a Postgres cut and a worker restarted while Redis is down,
# against real `tollgate proxy` and `tollgate control` processes (see
# bench/faults/main.go).
#
# Needs redis-server (the bench starts its own on a free loopback port; the
# machine's Redis is not used) and, for the Postgres scenario, the machine's
# Postgres on 127.0.0.1:5432 as user postgres (database tollgate_faults is
# created and dropped; FAULTS_POSTGRES=off skips the scenario).
# Environment: FAULTS_CONNECTIONS (32), FAULTS_DURATION (6s), FAULTS_DOWN (5s),
# FAULTS_PORT_BASE (19300), FAULTS_POSTGRES (a postgres:// URL of the server,
# or off), FAULTS_TOLLGATE (a tollgate binary to measure instead of building
# ./cmd/tollgate). Writes bench/out/faults.txt; logs of every process stay in the
# temporary directory when the run fails.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="$repo_root/bench/out"
mkdir -p "$out_dir"
work="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-faults.XXXXXX")"
cleanup() {
	rc=$?
	if [ "$rc" -eq 0 ]; then
		rm -rf "$work"
	else
		echo "faults: failed; binaries, Redis data, worker state and logs kept in $work" >&2
	fi
}
trap cleanup EXIT
cd "$repo_root"
if [ -n "${FAULTS_TOLLGATE:-}" ]; then
	cp "$FAULTS_TOLLGATE" "$work/tollgate"
else
	go build -o "$work/tollgate" ./cmd/tollgate
fi
go build -o "$work/faults" ./bench/faults
"$work/faults" -tollgate "$work/tollgate" -work "$work" \
	-connections "${FAULTS_CONNECTIONS:-32}" -duration "${FAULTS_DURATION:-6s}" \
	-down "${FAULTS_DOWN:-5s}" -port-base "${FAULTS_PORT_BASE:-19300}" \
	-postgres "${FAULTS_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}" |
	tee "$out_dir/faults.txt"
