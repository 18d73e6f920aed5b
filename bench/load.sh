#!/usr/bin/env bash
# Load bench (issue 11, DESIGN.md "Speed is a feature"): the Tollgate proxy
# worker against nginx and HAProxy, measured the fair way.
set -euo pipefail
#
#   PER CORE   each proxy pinned to one CPU with taskset (nginx worker_processes 1,
#              HAProxy nbthread 1, Go proxies GOMAXPROCS=1); wrk -t1 -c64 and the
#              backend pinned to the other CPU(s)
#   ALL CORES  nothing pinned (nginx worker_processes auto, HAProxy's default
#              threads, Go's default GOMAXPROCS), beside it and labelled so
#
# Targets, all in front of one Go backend process listening on two ports (the
# two targets every proxy balances over):
#   direct        wrk -> backend
#   nginx         nginx proxy_pass, keep-alive upstream
#   haproxy       HAProxy, keep-alive both sides
#   forwarder     bench/forwarder: a bare fasthttp HostClient forwarder, the engine's floor
#   tollgate      a standalone `tollgate proxy` (its own process), every feature on: key
#                 auth, plan rate limit and quota (never reached), round robin over the 2
#                 targets with health checks, metering
#   ladder        tg-none tg-key tg-ratelimit tg-quota tg-metering: a worker built from
#                 proxy/worker with features added one at a time (metering off until the
#                 last), for the CPU each feature costs
#   h2            nginx-h2 tollgate-h2 (TLS, self-signed) and nginx-h2c tollgate-h2c,
#                 by h2load (nghttp2-client); skipped with a message if not installable
# Each target is measured BENCH_ROUNDS times, rounds interleaved across targets;
# the report gives each round and the median: requests/s, p50/p99/p99.9 latency,
# CPU per request (utime+stime of the proxy's processes from /proc/<pid>/stat,
# divided by the requests served) and tollgate/nginx ratios against the goals
# (>= 0.9x requests/s, p99 <= 1.3x, CPU per request <= 1.2x, per core).
#
# It installs wrk, nginx, haproxy and nghttp2-client with apt-get when missing
# (as root), starts Postgres and Redis (deploy/local/services.sh), builds
# bin/tollgate, bench/loadbench and bench/forwarder, runs `tollgate dev` only for
# the control plane and the seed (database tollgate_bench, Redis DB 15, prefix
# tollgate-bench:, both removed at the end) and picks free loopback ports.
#
# Usage: bench/load.sh [-h]   (about 11 minutes with the defaults on 2 CPUs)
# Environment (all optional):
#   BENCH_ROUNDS            rounds per target                         (3)
#   BENCH_DURATION          measured seconds per run                  (8s)
#   BENCH_WARMUP            unmeasured warm-up before each run        (2s; 0 to skip)
#   BENCH_CONNECTIONS       wrk connections                           (64)
#   BENCH_THREADS           wrk threads, per core                     (1)
#   BENCH_ALL_THREADS       wrk threads, all cores                    (number of CPUs)
#   BENCH_H2_CONNECTIONS    h2load connections                        (16)
#   BENCH_H2_STREAMS        h2load streams per connection             (4; 16x4 = 64 in flight)
#   BENCH_MODES             "percore allcores", or one of them
#   BENCH_TARGETS           per-core targets: names above, "ladder", "h2", "all" (all)
#   BENCH_ALLCORES_TARGETS  all-cores targets       ("direct nginx haproxy forwarder tollgate")
#   BENCH_PROXY_CPU         the CPU the proxies are pinned to         (the last allowed CPU)
#   BENCH_CLIENT_CPUS       CPUs of wrk/h2load and the backend        (the other CPUs)
#   BENCH_BACKEND           fasthttp or nethttp                       (fasthttp)
#   BENCH_OUT               output directory                          (bench/out/<UTC timestamp>)
#   BENCH_ALLOW_ERRORS=1    report failed runs (non-2xx, socket errors) instead of exiting 1
#   BENCH_FAULTS=1          also run bench/faults.sh afterwards
# Output: the table on stdout; bench/out/<timestamp>/summary.md, summary.json and
# raw/ (every wrk and h2load output); bench/out/latest points at the last run.

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
	awk 'NR > 1 && /^set / { next } NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
	exit 0
fi
[ $# -eq 0 ] || {
	echo "bench/load.sh takes no arguments (configure it with BENCH_* variables; -h for help)" >&2
	exit 2
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench_dir="$repo_root/bench"

log() { echo "bench: $*" >&2; }
die() {
	echo "bench: FAIL: $*" >&2
	exit 1
}

# --- tools ------------------------------------------------------------------
apt_updated=false
apt_install() { # apt_install PACKAGE: quietly, as root only
	[ "$(id -u)" -eq 0 ] || return 1
	if ! $apt_updated; then
		log "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || return 1
		apt_updated=true
	fi
	log "apt-get install $1"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >/dev/null
}
has() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
need_tool() { # need_tool BINARY DEBIAN-PACKAGE
	has "$1" && return 0
	apt_install "$2" || die "$1 is missing; run: sudo apt-get update && sudo apt-get install -y $2"
	has "$1" || die "$1 not found after installing $2"
}
need_tool wrk wrk
need_tool nginx nginx
need_tool haproxy haproxy
need_tool taskset util-linux
no_h2=""
if ! has h2load; then
	apt_install nghttp2-client || true
	has h2load || no_h2="h2load not installed and not installable here (apt-get install nghttp2-client)"
fi
[ -z "$no_h2" ] || log "HTTP/2 targets skipped: $no_h2"
PATH="$PATH:/usr/sbin"

# --- build --------------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-bench.XXXXXX")"
lb_pid=""
# Leftovers are possible only if loadbench itself was killed: it stops its
# children otherwise. Only processes of the groups it started, by pid.
kill_leftovers() {
	[ -f "$work/pgids" ] || return 0
	local pg pid comm
	while read -r pg; do
		[ -n "$pg" ] || continue
		for pid in $(pgrep -g "$pg" 2>/dev/null || true); do
			comm="$(cat "/proc/$pid/comm" 2>/dev/null)" || continue
			case "$comm" in
			nginx | haproxy | tollgate | loadbench | forwarder) kill -KILL "$pid" 2>/dev/null || true ;;
			esac
		done
	done <"$work/pgids"
}
cleanup() {
	local status=$?
	trap - EXIT INT TERM
	if [ -n "$lb_pid" ] && kill -0 "$lb_pid" 2>/dev/null; then
		kill -TERM "$lb_pid" 2>/dev/null || true
		wait "$lb_pid" 2>/dev/null || true
	fi
	kill_leftovers
	if ((status != 0)); then
		log "logs kept in $work/logs"
	else
		rm -rf "$work"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$repo_root/deploy/local/services.sh"
cd "$repo_root"
log "building bin/tollgate, bench/loadbench and bench/forwarder"
go build -o bin/tollgate ./cmd/tollgate
go build -o "$work/loadbench" ./bench/loadbench
go build -o "$work/forwarder" ./bench/forwarder

# --- run ----------------------------------------------------------------------
[ "${BENCH_ALLOW_SOCKET_ERRORS:-0}" = 1 ] && export BENCH_ALLOW_ERRORS=1 # the old name
args=(run -repo "$repo_root" -work "$work" -tollgate "$repo_root/bin/tollgate" -forwarder "$work/forwarder")
[ -z "${BENCH_OUT:-}" ] || args+=(-out "$BENCH_OUT")
[ -z "$no_h2" ] || args+=(-no-h2 "$no_h2")
# In the background and waited for, so that a TERM reaches the trap at once.
"$work/loadbench" "${args[@]}" &
lb_pid=$!
status=0
wait "$lb_pid" || status=$?
lb_pid=""
((status == 0)) || exit "$status"

# --- faults (issue 3) -------------------------------------------------------
# BENCH_FAULTS=1 also runs bench/faults.sh: shares per balancing algorithm and
# failed requests during a config change, a target kill and a SIGTERM, all
# under load (bench/out/faults.txt).
if [ "${BENCH_FAULTS:-0}" = "1" ]; then
	log "running bench/faults.sh"
	"$bench_dir/faults.sh"
fi
