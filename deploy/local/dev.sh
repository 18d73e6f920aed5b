#!/usr/bin/env bash
# Runs Tollgate on this machine: makes Postgres and Redis reachable, then starts
# `tollgate dev` (migrations, a seeded demo tenant, control plane on :8080, one
# proxy worker on :8000 with admin on :9000, two demo backends). Arguments go to
# `tollgate dev`, for example: deploy/local/dev.sh -rate 50
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
./deploy/local/services.sh
exec go run ./cmd/tollgate dev "$@"
