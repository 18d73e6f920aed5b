#!/usr/bin/env bash
# HTTP/2 conformance (issue 13): h2spec against the proxy worker's two HTTP/2
# fronts, the TLS front (h2 by ALPN) and the h2c front (cleartext, prior
# knowledge).
set -euo pipefail
#
# It builds `tollgate` and starts, on free loopback ports:
#   - its own redis-server, nothing saved (installed with apt-get when missing
#     and run as root); the machine's Redis is not touched;
#   - a demo backend (`tollgate backend`);
#   - a worker (`tollgate proxy`) with TOLLGATE_PROXY_TLS_ADDR (a self-signed
#     certificate for localhost, made with openssl) and TOLLGATE_PROXY_H2C_ADDR,
#     serving one tenant (custom domain localhost, one API at /, auth none)
#     from a snapshot file (TOLLGATE_PROXY_SNAPSHOT_FILE).
# Then it runs `h2spec -h localhost -p TLS_PORT -t -k` and
# `h2spec -h localhost -p H2C_PORT`, prints the counts of each front and the
# failed cases, and writes to bench/out/h2spec/: tls.xml and h2c.xml (JUnit,
# h2spec -j), tls.txt and h2c.txt (h2spec's output) and worker.log. It exits 1
# when a case fails on either front. It takes about 15 s after the build and
# is not part of `go test ./...`.
#
# h2spec is $H2SPEC, else the one on PATH, else the one in the cache
# directory, installed there with `go install` when missing.
#
# Usage: bench/h2spec.sh [-h]
# Environment (all optional):
#   H2SPEC          an h2spec binary to use
#   H2SPEC_VERSION  the version `go install` fetches        (v2.2.1+incompatible)
#   H2SPEC_CACHE    where it is installed                   (${XDG_CACHE_HOME:-~/.cache}/tollgate/h2spec)
#   H2SPEC_STRICT=1 also run h2spec's strict cases (-S)
#   H2SPEC_TIMEOUT  seconds h2spec waits for an answer      (2)
#   BENCH_OUT       output directory                        (bench/out/h2spec)

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
	awk 'NR > 1 && /^set / { next } NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
	exit 0
fi
[ $# -eq 0 ] || {
	echo "bench/h2spec.sh takes no arguments (configure it with H2SPEC_* variables; -h for help)" >&2
	exit 2
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${BENCH_OUT:-$repo_root/bench/out/h2spec}"
h2spec_version="${H2SPEC_VERSION:-v2.2.1+incompatible}"
h2spec_cache="${H2SPEC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/h2spec}"

log() { echo "h2spec: $*" >&2; }
die() {
	echo "h2spec: FAIL: $*" >&2
	exit 1
}
has() { command -v "$1" >/dev/null 2>&1; }

# --- tools --------------------------------------------------------------------
has go || die "go is not on PATH"
has openssl || die "openssl is missing (apt-get install openssl)"
if ! has redis-server; then
	if [ "$(id -u)" -eq 0 ]; then
		log "apt-get install redis-server"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
	fi
	has redis-server || die "redis-server is missing; run: sudo apt-get install -y redis-server"
fi
h2spec="${H2SPEC:-}"
if [ -z "$h2spec" ]; then
	if has h2spec; then
		h2spec="$(command -v h2spec)"
	else
		h2spec="$h2spec_cache/h2spec"
		if [ ! -x "$h2spec" ]; then
			log "installing h2spec $h2spec_version into $h2spec_cache"
			mkdir -p "$h2spec_cache"
			(cd "$repo_root" && GOBIN="$h2spec_cache" go install "github.com/summerwind/h2spec/cmd/h2spec@$h2spec_version")
		fi
	fi
fi
[ -x "$h2spec" ] || die "no h2spec at $h2spec"

# --- processes ----------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-h2spec.XXXXXX")"
pids=()
cleanup() {
	local status=$? pid
	trap - EXIT INT TERM
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	[ ! -f "$work/worker.log" ] || cp "$work/worker.log" "$out/worker.log" 2>/dev/null || true
	rm -rf "$work"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# listening PORT: something accepts connections on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# free_port VAR: sets VAR to a loopback port that nothing listens on.
taken=" "
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 40000))
		if [[ "$taken" != *" $p "* ]] && ! listening "$p"; then
			taken+="$p "
			printf -v "$1" '%s' "$p"
			return 0
		fi
	done
	die "no free loopback port found"
}
# wait_until SECONDS WHAT COMMAND...: polls COMMAND until it succeeds.
wait_until() {
	local seconds="$1" what="$2"
	local deadline=$((SECONDS + seconds))
	shift 2
	until "$@"; do
		((SECONDS < deadline)) || die "$what not ready after ${seconds}s (worker log: $out/worker.log)"
		sleep 0.2
	done
}

mkdir -p "$out"
rm -f "$out"/tls.* "$out"/h2c.* "$out/worker.log"
log "building tollgate"
(cd "$repo_root" && go build -o "$work/tollgate" ./cmd/tollgate)

for port in redis_port backend_port traffic_port admin_port tls_port h2c_port; do
	free_port "$port"
done

redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
	--dir "$work" --logfile "$work/redis.log" &
pids+=($!)
"$work/tollgate" backend -addr "127.0.0.1:$backend_port" -name h2spec >"$work/backend.log" 2>&1 &
pids+=($!)

mkdir -p "$work/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
	-addext "subjectAltName=DNS:localhost" -keyout "$work/tls/localhost.key" -out "$work/tls/localhost.crt" 2>/dev/null
# A snapshot as the control plane publishes it (the one-document form the
# disk cache still reads): tenant h2spec on the custom domain localhost.
cat >"$work/snapshot.json" <<EOF
{"schema": 11, "generation": 1, "compiled_at": "2026-01-01T00:00:00Z", "tenants": [{
  "id": "t-h2spec", "slug": "h2spec", "domains": ["localhost"],
  "upstreams": [{"id": "u", "algorithm": "round_robin", "targets": [{"url": "http://127.0.0.1:$backend_port", "weight": 1}]}],
  "apis": [{"id": "a", "slug": "a", "base_path": "/", "upstream_id": "u", "auth": "none"}]}]}
EOF

wait_until 10 "redis-server" listening "$redis_port"
env -i PATH="$PATH" HOME="$HOME" \
	TOLLGATE_SECRET="$(openssl rand -hex 32)" \
	TOLLGATE_REDIS_URL="redis://127.0.0.1:$redis_port/0" \
	TOLLGATE_PROXY_ADDR="127.0.0.1:$traffic_port" \
	TOLLGATE_PROXY_ADMIN_ADDR="127.0.0.1:$admin_port" \
	TOLLGATE_PROXY_TLS_ADDR="127.0.0.1:$tls_port" \
	TOLLGATE_PROXY_TLS_DIR="$work/tls" \
	TOLLGATE_PROXY_H2C_ADDR="127.0.0.1:$h2c_port" \
	TOLLGATE_PROXY_SNAPSHOT_FILE="$work/snapshot.json" \
	TOLLGATE_UPSTREAM_ALLOW_PRIVATE=true \
	"$work/tollgate" proxy >"$work/worker.log" 2>&1 &
pids+=($!)
config_live() { grep -qs '"msg":"config live"' "$work/worker.log"; }
wait_until 30 "the worker's config" config_live
wait_until 10 "the TLS front" listening "$tls_port"
wait_until 10 "the h2c front" listening "$h2c_port"
wait_until 10 "the backend" listening "$backend_port"

# --- h2spec -------------------------------------------------------------------
flags=(-h localhost -o "${H2SPEC_TIMEOUT:-2}")
[ "${H2SPEC_STRICT:-0}" != 1 ] || flags+=(-S)
failed=0
summary=()
for front in tls h2c; do
	if [ "$front" = tls ]; then
		args=(-p "$tls_port" -t -k)
	else
		args=(-p "$h2c_port")
	fi
	log "h2spec ${flags[*]} ${args[*]} ($front front)"
	"$h2spec" "${flags[@]}" "${args[@]}" -j "$out/$front.xml" >"$out/$front.txt" 2>&1 || true
	# "145 tests, 145 passed, 0 skipped, 0 failed"
	counts="$(grep -E '^[0-9]+ tests, [0-9]+ passed, [0-9]+ skipped, [0-9]+ failed' "$out/$front.txt" | tail -1 || true)"
	if [ -z "$counts" ]; then
		summary+=("$(printf '%-5s  h2spec did not finish (see %s)' "$front" "$out/$front.txt")")
		failed=1
		continue
	fi
	read -r tests _ passed _ skipped _ nfailed _ <<<"${counts//,/}"
	summary+=("$(printf '%-5s %6d %7d %8d %7d' "$front" "$tests" "$passed" "$skipped" "$nfailed")")
	if ((nfailed > 0)); then
		failed=1
		echo "== $front front: failed cases"
		sed -n '/^Failures:/,/^Finished in/p' "$out/$front.txt" | sed '1d;$d'
	fi
done

echo "h2spec ($h2spec) against the worker's HTTP/2 fronts"
printf '%-5s %6s %7s %8s %7s\n' front tests passed skipped failed
printf '%s\n' "${summary[@]}"
echo "reports: $out/{tls,h2c}.{xml,txt}"
exit "$failed"
