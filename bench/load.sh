#!/usr/bin/env bash
# Load bench: the Tollgate proxy worker against nginx proxy_pass, same machine,
# same run, same backend, same wrk settings (DESIGN.md "Speed is a feature").
#
# Targets, each measured with wrk --latency:
#   direct    wrk -> tollgate backend
#   nginx     wrk -> nginx (keepalive upstream) -> tollgate backend
#   tollgate  wrk -> a standalone `tollgate proxy` worker (key auth, rate limit, balancing,
#             metering on) -> tollgate backend. `tollgate dev` runs beside it only to
#             serve the control plane and seed the demo tenant; the measured worker
#             is its own process, as in production.
#
# Environment (all optional):
#   BENCH_THREADS       wrk threads                 (default: number of CPUs)
#   BENCH_CONNECTIONS   wrk connections             (default: 64)
#   BENCH_DURATION      measured duration per target (default: 15s)
#   BENCH_WARMUP        unmeasured warm-up per target (default: 3s; 0 to skip)
#   BENCH_TARGETS       which targets, in order      (default: "direct nginx tollgate")
#   BENCH_PORT_BASE     first of the loopback ports used (default: 19100)
#   BENCH_ALLOW_SOCKET_ERRORS=1  report wrk socket errors instead of failing
# Writes bench/out/results.txt (the table) and bench/out/<target>.txt (raw wrk).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench_dir="$repo_root/bench"
out_dir="$bench_dir/out"

threads="${BENCH_THREADS:-$(nproc)}"
connections="${BENCH_CONNECTIONS:-64}"
duration="${BENCH_DURATION:-15s}"
warmup="${BENCH_WARMUP:-3s}"
targets="${BENCH_TARGETS:-direct nginx tollgate}"
port_base="${BENCH_PORT_BASE:-19100}"
backend_port=$((port_base + 1))
nginx_port=$((port_base + 2))
proxy_port=$((port_base + 3))
admin_port=$((port_base + 4))
control_port=$((port_base + 5))
worker_port=$((port_base + 6))
worker_admin_port=$((port_base + 7))
bench_secret="tollgate-bench-secret-$(date +%s)"
bench_db_url="postgres://postgres@127.0.0.1:5432/tollgate_bench?sslmode=disable"
bench_redis_url="redis://127.0.0.1:6379/15"
bench_redis_prefix="tollgate-bench:"

log() { echo "bench: $*" >&2; }
die() {
	echo "bench: FAIL: $*" >&2
	exit 1
}

# --- tools ------------------------------------------------------------------
apt_updated=false
need_tool() { # need_tool BINARY DEBIAN-PACKAGE
	command -v "$1" >/dev/null 2>&1 && return 0
	[ "$(id -u)" -eq 0 ] || die "$1 is missing; run: sudo apt-get update && sudo apt-get install -y $2"
	if ! $apt_updated; then
		log "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
		apt_updated=true
	fi
	log "apt-get install $2"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}
nginx_bin() {
	command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true
}
if [ -z "$(nginx_bin)" ]; then need_tool nginx nginx; fi
need_tool wrk wrk
need_tool curl curl
NGINX="$(nginx_bin)"
[ -n "$NGINX" ] || die "nginx not found after install"

# --- children and cleanup ---------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-bench.XXXXXX")"
pids=()
cleanup() {
	local status=$?
	trap - EXIT INT TERM
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill -TERM "${pids[i]}" 2>/dev/null || true
	done
	local deadline=$((SECONDS + 10))
	for pid in "${pids[@]}"; do
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
		kill -KILL "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	if command -v redis-cli >/dev/null 2>&1; then
		redis-cli -n 15 --scan --pattern "${bench_redis_prefix}*" 2>/dev/null |
			xargs -r -n 500 redis-cli -n 15 del >/dev/null 2>&1 || true
	fi
	if command -v psql >/dev/null 2>&1; then
		psql -q -h 127.0.0.1 -U postgres -d postgres -c 'DROP DATABASE IF EXISTS tollgate_bench WITH (FORCE)' >/dev/null 2>&1 || true
	fi
	if ((status != 0)); then
		log "logs kept in $work"
	else
		rm -rf "$work"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_http NAME URL [CURL-ARGS...]: polls until URL answers 200.
wait_http() {
	local name="$1" url="$2"
	shift 2
	local deadline=$((SECONDS + 60)) code
	while :; do
		code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" || true)"
		[ "$code" = "200" ] && return 0
		((SECONDS < deadline)) || die "$name at $url did not answer 200 within 60s (last status: $code); logs in $work"
		for pid in "${pids[@]}"; do
			kill -0 "$pid" 2>/dev/null || die "a child (pid $pid) exited while waiting for $name; logs in $work"
		done
		sleep 0.3
	done
}

# --- build and start --------------------------------------------------------
"$repo_root/deploy/local/services.sh"
log "building bin/tollgate"
(cd "$repo_root" && go build -o bin/tollgate ./cmd/tollgate)
TOLLGATE="$repo_root/bin/tollgate"

backend_url="http://127.0.0.1:$backend_port"
log "starting backend on $backend_url"
"$TOLLGATE" backend -addr "127.0.0.1:$backend_port" -name bench >"$work/backend.log" 2>&1 &
pids+=($!)
wait_http backend "$backend_url/healthz"

log "starting nginx on 127.0.0.1:$nginx_port"
sed -e "s|@DIR@|$work|g" -e "s|@LISTEN@|127.0.0.1:$nginx_port|g" -e "s|@BACKEND@|127.0.0.1:$backend_port|g" \
	"$bench_dir/nginx.conf.tmpl" >"$work/nginx.conf"
"$NGINX" -p "$work" -c "$work/nginx.conf" -e "$work/error.log" >"$work/nginx.log" 2>&1 &
pids+=($!)
wait_http nginx "http://127.0.0.1:$nginx_port/warm"

log "starting tollgate dev (database tollgate_bench, Redis DB 15 prefix $bench_redis_prefix)"
env_file="$work/dev.env"
TOLLGATE_REDIS_URL="$bench_redis_url" \
	TOLLGATE_REDIS_PREFIX="$bench_redis_prefix" \
	TOLLGATE_SECRET="$bench_secret" \
	TOLLGATE_CONTROL_ADDR="127.0.0.1:$control_port" \
	TOLLGATE_PROXY_ADDR="127.0.0.1:$proxy_port" \
	TOLLGATE_PROXY_ADMIN_ADDR="127.0.0.1:$admin_port" \
	TOLLGATE_LOG_LEVEL="${TOLLGATE_LOG_LEVEL:-warn}" \
	"$TOLLGATE" dev -database "$bench_db_url" -targets "$backend_url" -rate 100000000 -env-file "$env_file" \
	>"$work/tollgate.log" 2>&1 &
pids+=($!)
deadline=$((SECONDS + 90))
until [ -s "$env_file" ]; do
	((SECONDS < deadline)) || die "tollgate dev wrote no $env_file within 90s; see $work/tollgate.log"
	kill -0 "${pids[-1]}" 2>/dev/null || die "tollgate dev exited; see $work/tollgate.log: $(tail -n 5 "$work/tollgate.log")"
	sleep 0.3
done
demo_key="$(sed -n 's/^TOLLGATE_DEMO_KEY=//p' "$env_file")"
demo_host="$(sed -n 's/^TOLLGATE_DEMO_HOST=//p' "$env_file")"
demo_url="$(sed -n 's/^TOLLGATE_DEMO_URL=//p' "$env_file")"
[ -n "$demo_key" ] || die "no TOLLGATE_DEMO_KEY in $env_file"
if [ -z "$demo_host" ]; then # derive it from the URL: http://demo.localhost:8000/demo/
	demo_host="${demo_url#*://}"
	demo_host="${demo_host%%[:/]*}"
fi
demo_path="/${demo_url#*://*/}"
[ "$demo_path" != "/$demo_url" ] || demo_path="/demo/"
log "starting a standalone tollgate proxy worker on 127.0.0.1:$worker_port"
TOLLGATE_REDIS_URL="$bench_redis_url" \
	TOLLGATE_REDIS_PREFIX="$bench_redis_prefix" \
	TOLLGATE_SECRET="$bench_secret" \
	TOLLGATE_UPSTREAM_ALLOW_PRIVATE=true \
	TOLLGATE_PROXY_ADDR="127.0.0.1:$worker_port" \
	TOLLGATE_PROXY_ADMIN_ADDR="127.0.0.1:$worker_admin_port" \
	TOLLGATE_LOG_LEVEL="${TOLLGATE_LOG_LEVEL:-warn}" \
	"$TOLLGATE" proxy >"$work/worker.log" 2>&1 &
pids+=($!)
wait_http "tollgate proxy readiness" "http://127.0.0.1:$worker_admin_port/readyz"
proxy_url="http://127.0.0.1:$worker_port${demo_path}bench"
wait_http "tollgate proxy" "$proxy_url" -H "Host: $demo_host" -H "X-API-Key: $demo_key"
# The answer must come from the backend through the proxy, not from the proxy itself.
curl -s --max-time 5 -H "Host: $demo_host" -H "X-API-Key: $demo_key" "$proxy_url" | grep -q '"backend":"bench"' ||
	die "the tollgate proxy did not return the backend's answer"
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Host: $demo_host" "$proxy_url")"
[ "$code" = "401" ] || die "the tollgate proxy answered $code without a key, want 401: key auth is not on"

# --- measure ----------------------------------------------------------------
mkdir -p "$out_dir"
declare -A rps p50 p99 p999

# run_wrk TARGET URL HOST KEY
run_wrk() {
	local name="$1" url="$2" host="$3" key="$4" raw="$out_dir/$1.txt"
	if [ "$warmup" != "0" ] && [ "$warmup" != "0s" ]; then
		BENCH_HOST="$host" BENCH_API_KEY="$key" \
			wrk -t "$threads" -c "$connections" -d "$warmup" -s "$bench_dir/wrk.lua" "$url" >/dev/null
	fi
	log "measuring $name: wrk -t$threads -c$connections -d$duration --latency $url"
	BENCH_HOST="$host" BENCH_API_KEY="$key" \
		wrk -t "$threads" -c "$connections" -d "$duration" --latency -s "$bench_dir/wrk.lua" "$url" >"$raw"

	local line
	line="$(grep '^BENCH ' "$raw" || true)"
	[ -n "$line" ] || die "$name: wrk printed no BENCH line; see $raw"
	field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$line"; }
	local requests status sock
	requests="$(field requests)"
	status="$(field err_status)"
	sock=$(($(field err_connect) + $(field err_read) + $(field err_write) + $(field err_timeout)))
	((requests > 0)) || die "$name: no requests completed; see $raw"
	if grep -q 'Non-2xx or 3xx responses' "$raw" || ((status > 0)); then
		die "$name: $(grep 'Non-2xx or 3xx responses' "$raw" || echo "$status error statuses") of $requests responses were not 2xx; see $raw"
	fi
	if ((sock > 0)); then
		if [ "${BENCH_ALLOW_SOCKET_ERRORS:-0}" = 1 ]; then
			log "WARNING: $name: $sock socket errors ($(grep 'Socket errors' "$raw"))"
		else
			die "$name: $sock socket errors ($(grep 'Socket errors' "$raw")); BENCH_ALLOW_SOCKET_ERRORS=1 to accept"
		fi
	fi
	rps[$name]="$(awk '/^Requests\/sec:/ {print $2}' "$raw")"
	[ -n "${rps[$name]}" ] || die "$name: no Requests/sec in wrk output; see $raw"
	# Percentiles from the done() hook: exact microseconds, shown in ms.
	p50[$name]="$(awk -v v="$(field p50_us)" 'BEGIN {printf "%.2f", v/1000}')"
	p99[$name]="$(awk -v v="$(field p99_us)" 'BEGIN {printf "%.2f", v/1000}')"
	p999[$name]="$(awk -v v="$(field p999_us)" 'BEGIN {printf "%.2f", v/1000}')"
}

for target in $targets; do
	case "$target" in
	direct) run_wrk direct "$backend_url/bench" "" "" ;;
	nginx) run_wrk nginx "http://127.0.0.1:$nginx_port/bench" "" "" ;;
	tollgate) run_wrk tollgate "$proxy_url" "$demo_host" "$demo_key" ;;
	*) die "unknown target $target (want direct, nginx, tollgate)" ;;
	esac
done

# --- report -----------------------------------------------------------------
ratio() { # ratio A B: A/B of two targets' RPS, or "-" when one is missing
	if [ -n "${rps[$1]:-}" ] && [ -n "${rps[$2]:-}" ]; then
		awk -v a="${rps[$1]}" -v b="${rps[$2]}" 'BEGIN {printf "%.2f", a/b}'
	else
		echo "-"
	fi
}
{
	echo "Tollgate load bench, $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) CPUs ($(uname -srm))"
	echo "wrk: $threads threads, $connections connections, $duration per target (warm-up $warmup); all on loopback"
	echo "tollgate: key auth, rate limit (never triggered), round-robin balancing, metering on"
	echo
	printf '%-10s %12s %10s %10s %10s\n' target RPS "p50 ms" "p99 ms" "p99.9 ms"
	for target in $targets; do
		printf '%-10s %12s %10s %10s %10s\n' "$target" "${rps[$target]}" "${p50[$target]}" "${p99[$target]}" "${p999[$target]}"
	done
	echo
	echo "tollgate/nginx  = $(ratio tollgate nginx)   (target: >= 0.90)"
	echo "tollgate/direct = $(ratio tollgate direct)"
	echo "nginx/direct    = $(ratio nginx direct)"
} | tee "$out_dir/results.txt"
log "wrote $out_dir/results.txt"

# --- faults (issue 3) -------------------------------------------------------
# BENCH_FAULTS=1 also runs bench/faults.sh: shares per balancing algorithm and
# failed requests during a config change, a target kill and a SIGTERM, all
# under load (bench/out/faults.txt).
if [ "${BENCH_FAULTS:-0}" = "1" ]; then
	log "running bench/faults.sh"
	"$bench_dir/faults.sh"
fi
