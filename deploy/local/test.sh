#!/usr/bin/env bash
# Tests Tollgate: makes Postgres, Redis and stripe-mock reachable, then runs
# `go vet ./...` and `go test -count=1 ./...`. Arguments go to `go test`, for
# example: deploy/local/test.sh -race -run TestProxy
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
./deploy/local/services.sh --stripe-mock

echo "+ go vet ./..." >&2
go vet ./...
echo "+ go test -count=1 ${*:+$* }./..." >&2
go test -count=1 "$@" ./...
