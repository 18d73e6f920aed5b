#!/usr/bin/env bash
# Makes a Redis Cluster of three masters reachable on loopback, for the tests
# that check Tollgate on a Cluster (DESIGN.md "Scale past one machine"):
#   127.0.0.1:7000, 127.0.0.1:7001, 127.0.0.1:7002 (no replicas, no persistence)
#
# If the three nodes already answer and the cluster is ok, nothing happens.
# Otherwise the cluster is made anew: nodes of an earlier run are shut down
# and their state dropped (it is test data), three redis-server
# --cluster-enabled yes are started (daemonized, state under
# $TOLLGATE_STATE_DIR/redis-cluster) and `redis-cli --cluster create` joins
# them. A Redis of someone else on one of the ports is left alone: the script
# fails and says so.
#
# Prints the address list to export, for example:
#   export TOLLGATE_TEST_REDIS_CLUSTER="$(deploy/local/redis-cluster.sh)"
# Usage: deploy/local/redis-cluster.sh [--stop]   (--stop shuts the nodes down and drops their state)
set -euo pipefail

ports=(7000 7001 7002)
state_dir="${TOLLGATE_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/tollgate}/redis-cluster"
wait_seconds="${TOLLGATE_SERVICES_TIMEOUT:-60}"

log() { echo "redis-cluster.sh: $*" >&2; }
die() {
	echo "redis-cluster.sh: $*" >&2
	exit 1
}

addrs() {
	local out="" p
	for p in "${ports[@]}"; do
		out+="${out:+,}127.0.0.1:$p"
	done
	echo "$out"
}

stop=false
case "${1:-}" in
"") ;;
--stop) stop=true ;;
-h | --help)
	sed -n '2,16p' "$0"
	exit 0
	;;
*)
	die "unknown argument: $1"
	;;
esac

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
	[ "$(id -u)" -eq 0 ] || die "missing redis-server/redis-cli; run: sudo apt-get install -y redis-server"
	log "apt-get install redis-server"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
fi

node_up() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = "PONG" ]; }
# ours PORT: the node runs in this script's state directory.
ours() {
	[ -d "$state_dir/$1" ] &&
		[ "$(redis-cli -h 127.0.0.1 -p "$1" config get dir 2>/dev/null | sed -n 2p)" = "$(cd "$state_dir/$1" && pwd -P)" ]
}
# stop_node PORT: shuts a node of ours down and waits until it is gone.
stop_node() {
	redis-cli -h 127.0.0.1 -p "$1" shutdown nosave >/dev/null 2>&1 || true
	local i
	for i in $(seq 50); do
		node_up "$1" || return 0
		sleep 0.1
	done
	die "the node on 127.0.0.1:$1 did not stop"
}
cluster_ok() { redis-cli -h 127.0.0.1 -p "${ports[0]}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }

if $stop; then
	for p in "${ports[@]}"; do
		if node_up "$p" && ours "$p"; then
			stop_node "$p"
		fi
	done
	rm -rf "$state_dir"
	exit 0
fi

if cluster_ok && node_up "${ports[1]}" && node_up "${ports[2]}"; then
	addrs
	exit 0
fi


# Not all up, or not a healthy cluster: start anew. The cluster holds test
# data only, so nodes of ours are shut down and their state dropped; a
# Redis of someone else on one of the ports is left alone.
for p in "${ports[@]}"; do
	node_up "$p" || continue
	ours "$p" || die "127.0.0.1:$p answers but is not a node of $state_dir; free the port (or stop that Redis) and run this again"
	log "stopping the node on 127.0.0.1:$p (the cluster is not whole)"
	stop_node "$p"
done
rm -rf "$state_dir"
for p in "${ports[@]}"; do
	dir="$state_dir/$p"
	mkdir -p "$dir"
	log "starting redis-server --cluster-enabled yes on 127.0.0.1:$p (state: $dir)"
	redis-server --daemonize yes --bind 127.0.0.1 --port "$p" --dir "$dir" \
		--cluster-enabled yes --cluster-config-file "$dir/nodes.conf" --cluster-node-timeout 5000 \
		--save "" --appendonly no --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" >/dev/null
done

deadline=$((SECONDS + wait_seconds))
for p in "${ports[@]}"; do
	until node_up "$p"; do
		((SECONDS < deadline)) || die "node 127.0.0.1:$p did not answer within ${wait_seconds}s (log: $state_dir/$p/redis.log)"
		sleep 0.2
	done
done

log "redis-cli --cluster create $(addrs | tr , ' ')"
# shellcheck disable=SC2046
redis-cli --cluster create $(addrs | tr , ' ') --cluster-replicas 0 --cluster-yes >/dev/null

until cluster_ok; do
	((SECONDS < deadline)) || die "the cluster on $(addrs) did not reach cluster_state:ok within ${wait_seconds}s (logs: $state_dir/*/redis.log)"
	sleep 0.2
done
log "Redis Cluster is up on $(addrs)"
addrs
