#!/usr/bin/env bash
# Makes the services Tollgate needs reachable on this machine:
#   Postgres 127.0.0.1:5432 (user postgres, trust auth on 127.0.0.1)
#   Redis    127.0.0.1:6379
#   stripe-mock 127.0.0.1:12111 (only with --stripe-mock)
#
# For each: if it already answers, nothing happens. Otherwise, if a Docker
# engine responds, `docker compose up -d postgres redis`; else Debian's packages
# are installed (when missing) and started. Idempotent and quiet when all is up.
#
# Usage: deploy/local/services.sh [--stripe-mock]
set -euo pipefail

want_stripe=false
for arg in "$@"; do
	case "$arg" in
	--stripe-mock) want_stripe=true ;;
	-h | --help)
		sed -n '2,11p' "$0"
		exit 0
		;;
	*)
		echo "services.sh: unknown argument: $arg" >&2
		exit 2
		;;
	esac
done

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
state_dir="${TOLLGATE_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/tollgate}"
wait_seconds="${TOLLGATE_SERVICES_TIMEOUT:-60}"
stripe_mock_version="v0.203.0"

log() { echo "services.sh: $*" >&2; }
die() {
	echo "services.sh: $*" >&2
	exit 1
}

# reachable HOST PORT: a TCP connect with bash's /dev/tcp, so no client tool is needed.
reachable() {
	timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# wait_for NAME CHECK-COMMAND...: polls until the command succeeds or the timeout passes.
wait_for() {
	local name="$1"
	shift
	local deadline=$((SECONDS + wait_seconds))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			die "$name did not become ready within ${wait_seconds}s (check: $*)"
		fi
		sleep 0.5
	done
}

docker_usable() {
	command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1 &&
		docker compose version >/dev/null 2>&1
}

apt_updated=false
# apt_install PACKAGE...: installs Debian packages, or says what to run when not root.
apt_install() {
	if ! is_root; then
		die "missing $*; run: sudo apt-get update && sudo apt-get install -y $* (then run this script again)"
	fi
	command -v apt-get >/dev/null 2>&1 || die "missing $* and no apt-get here; install them with your package manager"
	if ! $apt_updated; then
		log "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
		apt_updated=true
	fi
	log "apt-get install $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pg_ready() {
	if command -v pg_isready >/dev/null 2>&1; then
		pg_isready -q -h 127.0.0.1 -p 5432 -U postgres
	else
		reachable 127.0.0.1 5432
	fi
}

# as_postgres CMD...: runs a command as the postgres OS user.
as_postgres() {
	if is_root; then
		if command -v runuser >/dev/null 2>&1; then
			runuser -u postgres -- "$@"
		else
			su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
		fi
	else
		sudo -n -u postgres -- "$@"
	fi
}

# pg_trust_loopback VERSION: makes user postgres log in without a password over
# 127.0.0.1 and ::1, as the tests and DESIGN.md's default URL expect.
pg_trust_loopback() {
	local ver="$1" hba="/etc/postgresql/$1/main/pg_hba.conf"
	[ -f "$hba" ] || return 0
	# Unreadable (not root): nothing can be checked or changed from here.
	[ -r "$hba" ] || return 0
	# The first host line for 127.0.0.1/32 that covers user postgres decides.
	local method
	method="$(awk '$1 ~ /^host/ && ($3 == "all" || $3 == "postgres") && $4 == "127.0.0.1/32" { print $5; exit }' "$hba")"
	[ "$method" = "trust" ] && return 0
	is_root || die "Postgres on 127.0.0.1 needs trust auth for user postgres; run as root: sudo $0"
	log "adding trust auth for user postgres on loopback to $hba"
	local tmp
	tmp="$(mktemp)"
	{
		echo "# added by tollgate deploy/local/services.sh: local development only"
		echo "host all postgres 127.0.0.1/32 trust"
		echo "host all postgres ::1/128 trust"
		cat "$hba"
	} >"$tmp"
	cat "$tmp" >"$hba"
	rm -f "$tmp"
	if reachable 127.0.0.1 5432; then
		pg_ctlcluster --skip-systemctl-redirect "$ver" main reload >/dev/null
	fi
}

start_postgres_native() {
	if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
		apt_install postgresql
	fi
	local ver
	ver="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
	[ -n "$ver" ] || die "no PostgreSQL version under /usr/lib/postgresql"
	if [ ! -d "/etc/postgresql/$ver/main" ]; then
		is_root || die "no PostgreSQL $ver cluster; run: sudo pg_createcluster $ver main"
		log "creating PostgreSQL $ver cluster main"
		pg_createcluster "$ver" main >/dev/null
	fi
	pg_trust_loopback "$ver"
	if ! reachable 127.0.0.1 5432; then
		is_root || die "PostgreSQL is installed but not running; run: sudo pg_ctlcluster --skip-systemctl-redirect $ver main start"
		log "starting PostgreSQL $ver"
		pg_ctlcluster --skip-systemctl-redirect "$ver" main start
	fi
}

start_redis_native() {
	command -v redis-server >/dev/null 2>&1 || apt_install redis-server
	log "starting redis-server on 127.0.0.1:6379"
	# ::1 may be missing (IPv6 off); fall back to IPv4 only.
	redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no >/dev/null ||
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
}

redis_ready() {
	if command -v redis-cli >/dev/null 2>&1; then
		[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]
	else
		reachable 127.0.0.1 6379
	fi
}

start_stripe_mock() {
	local bin
	bin="$(command -v stripe-mock || true)"
	if [ -z "$bin" ]; then
		local gobin
		gobin="$(go env GOBIN)"
		[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
		bin="$gobin/stripe-mock"
		if [ ! -x "$bin" ]; then
			command -v go >/dev/null 2>&1 || die "stripe-mock missing and no go command to install it"
			log "go install github.com/stripe/stripe-mock@$stripe_mock_version"
			go install "github.com/stripe/stripe-mock@$stripe_mock_version"
		fi
	fi
	mkdir -p "$state_dir"
	log "starting stripe-mock on 127.0.0.1:12111 (log: $state_dir/stripe-mock.log)"
	# setsid: stripe-mock outlives this script and is not killed with its process group.
	setsid "$bin" -http-addr 127.0.0.1:12111 -https-addr 127.0.0.1:12112 \
		>"$state_dir/stripe-mock.log" 2>&1 </dev/null &
	echo $! >"$state_dir/stripe-mock.pid"
}

need_pg=true
need_redis=true
reachable 127.0.0.1 5432 && need_pg=false
reachable 127.0.0.1 6379 && need_redis=false

if $need_pg || $need_redis; then
	if docker_usable; then
		svcs=()
		$need_pg && svcs+=(postgres)
		$need_redis && svcs+=(redis)
		log "docker compose up -d ${svcs[*]}"
		(cd "$repo_root" && docker compose up -d "${svcs[@]}")
	else
		$need_pg && start_postgres_native
		$need_redis && start_redis_native
	fi
	$need_pg && wait_for "Postgres on 127.0.0.1:5432" pg_ready
	$need_redis && wait_for "Redis on 127.0.0.1:6379" redis_ready
	log "Postgres and Redis are up"
fi

if $want_stripe && ! reachable 127.0.0.1 12111; then
	start_stripe_mock
	wait_for "stripe-mock on 127.0.0.1:12111" reachable 127.0.0.1 12111
	log "stripe-mock is up"
fi
