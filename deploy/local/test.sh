#!/usr/bin/env bash
# Tests Tollgate: makes Postgres, Redis, a local Redis Cluster
# (deploy/local/redis-cluster.sh) and stripe-mock reachable, then runs
# `go vet ./...` and `go test -count=1 ./...`. Arguments go to `go test`, for
# example: deploy/local/test.sh -race -run TestProxy
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
./deploy/local/services.sh --stripe-mock
# A Redis Cluster of three masters on 127.0.0.1:7000-7002: the tests that
# check Tollgate on a Cluster use it, and skip without it (fail when CI=true).
TOLLGATE_TEST_REDIS_CLUSTER="$(./deploy/local/redis-cluster.sh)"
export TOLLGATE_TEST_REDIS_CLUSTER

# The TypeScript SDK tests (services/sdk) type-check generated clients with a
# pinned tsc: plain `npm install typescript` now gets 7.x, the native port.
# Installed once into the user cache; TOLLGATE_TSC set by the caller wins.
ts_version=5.9.3 # = sdk.TypeScriptVersion (checked by a test)
ts_dir="${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/typescript-$ts_version"
if [[ -z "${TOLLGATE_TSC:-}" ]]; then
  if [[ ! -x "$ts_dir/node_modules/.bin/tsc" ]]; then
    if command -v npm >/dev/null 2>&1; then
      echo "+ npm install typescript@$ts_version (into $ts_dir)" >&2
      mkdir -p "$(dirname "$ts_dir")"
      ts_tmp="$(mktemp -d "$(dirname "$ts_dir")/.typescript-XXXXXX")"
      if npm install --prefix "$ts_tmp" --no-audit --no-fund --no-package-lock "typescript@$ts_version" >&2; then
        rm -rf "$ts_dir"
        mv "$ts_tmp" "$ts_dir"
      else
        rm -rf "$ts_tmp"
        echo "warning: npm could not install typescript@$ts_version; the TypeScript SDK tests will try again or skip" >&2
      fi
    else
      echo "warning: npm not found, so the TypeScript SDK type checks will be skipped (and fail when CI=true)." >&2
      echo "  Install Node.js 20+ with npm (Debian/Ubuntu: sudo apt-get install nodejs npm; macOS: brew install node)," >&2
      echo "  then rerun this script; or set TOLLGATE_TSC to the path of a tsc $ts_version binary." >&2
    fi
  fi
  if [[ -x "$ts_dir/node_modules/.bin/tsc" ]]; then
    export TOLLGATE_TSC="$ts_dir/node_modules/.bin/tsc"
  fi
fi

# Spectral (the oas ruleset) lints the /v1 document in
# services/mgmtapi.TestOpenAPISpectral; TestOpenAPILint checks the same in Go
# everywhere. Installed once into the user cache when npm is there;
# TOLLGATE_SPECTRAL set by the caller wins; without npm the test is skipped.
spectral_version=6.16.3 # = mgmtapi.SpectralVersion
spectral_dir="${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/spectral-$spectral_version"
if [[ -z "${TOLLGATE_SPECTRAL:-}" ]]; then
  if [[ ! -x "$spectral_dir/node_modules/.bin/spectral" ]] && command -v npm >/dev/null 2>&1; then
    echo "+ npm install @stoplight/spectral-cli@$spectral_version (into $spectral_dir)" >&2
    mkdir -p "$(dirname "$spectral_dir")"
    spectral_tmp="$(mktemp -d "$(dirname "$spectral_dir")/.spectral-XXXXXX")"
    if npm install --prefix "$spectral_tmp" --no-audit --no-fund --no-package-lock "@stoplight/spectral-cli@$spectral_version" >&2; then
      rm -rf "$spectral_dir"
      mv "$spectral_tmp" "$spectral_dir"
    else
      rm -rf "$spectral_tmp"
      echo "warning: npm could not install @stoplight/spectral-cli@$spectral_version; TestOpenAPISpectral will be skipped" >&2
    fi
  fi
  if [[ -x "$spectral_dir/node_modules/.bin/spectral" ]]; then
    export TOLLGATE_SPECTRAL="$spectral_dir/node_modules/.bin/spectral"
  fi
fi

echo "+ go vet ./..." >&2
go vet ./...
echo "+ go test -count=1 ${*:+$* }./..." >&2
go test -count=1 "$@" ./...
