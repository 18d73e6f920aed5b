#!/usr/bin/env bash
# Fault bench: balancing shares per algorithm, failed requests during config
# changes, a target kill and a SIGTERM, all under load against real
# `tollgate proxy` processes (see bench/faults/main.go).
#
# Needs Redis on 127.0.0.1:6379 (database 14 is used and cleaned).
# Environment: FAULTS_CONNECTIONS (32), FAULTS_DURATION (6s), FAULTS_PORT_BASE (19300).
# Writes bench/out/faults.txt.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="$repo_root/bench/out"
mkdir -p "$out_dir"
work="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-faults.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$repo_root"
go build -o "$work/tollgate" ./cmd/tollgate
go build -o "$work/faults" ./bench/faults
"$work/faults" -tollgate "$work/tollgate" \
	-connections "${FAULTS_CONNECTIONS:-32}" -duration "${FAULTS_DURATION:-6s}" \
	-port-base "${FAULTS_PORT_BASE:-19300}" | tee "$out_dir/faults.txt"
