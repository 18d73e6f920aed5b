#!/usr/bin/env bash
# Container health probe without curl: GET http://127.0.0.1:PORT/PATH and
# succeed on a 2xx status. Usage: tollgate-probe PORT PATH
set -euo pipefail

port="${1:?usage: tollgate-probe PORT PATH}"
path="${2:-/healthz}"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
IFS= read -r -t 5 status <&3
exec 3<&-
case "$status" in
HTTP/1.?" "2??" "*) exit 0 ;;
*)
	echo "probe 127.0.0.1:$port$path: ${status:-no answer}" >&2
	exit 1
	;;
esac
