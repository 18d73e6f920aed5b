#!/usr/bin/env bash
# Fuzz bench: runs every Go fuzz target (testing.F) of the data plane for a
# while each. `go test` runs their seed corpora only; this script searches
# for new failing inputs. Not part of `go test` or CI by default.
#
# Environment:
#   FUZZ_TIME      time per target, a Go duration or "Nx" executions (default 60s)
#   FUZZ_PACKAGES  packages searched for Fuzz* targets (default ./proxy/...)
#   FUZZ_MATCH     regexp the target names must match (default: all)
#   FUZZ_WORKERS   parallel fuzzing processes per target (default: GOMAXPROCS)
#
# A failing input is written by `go test` under the package's
# testdata/fuzz/<Target>/ and becomes part of its seed corpus: commit it
# with the fix. The summary goes to the terminal and bench/out/fuzz.txt.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
fuzz_time="${FUZZ_TIME:-60s}"
packages="${FUZZ_PACKAGES:-./proxy/...}"
match="${FUZZ_MATCH:-.}"
workers=()
if [[ -n "${FUZZ_WORKERS:-}" ]]; then
	workers=(-parallel "$FUZZ_WORKERS")
fi
out_dir="$repo_root/bench/out"
mkdir -p "$out_dir"
summary="$out_dir/fuzz.txt"

# `go test -list` prints a package's matching names, then "ok <package>".
targets=()
pending=()
while IFS= read -r line; do
	case "$line" in
	Fuzz*) pending+=("$line") ;;
	ok*)
		pkg="$(awk '{print $2}' <<<"$line")"
		for name in "${pending[@]}"; do
			if [[ "$name" =~ $match ]]; then
				targets+=("$pkg:$name")
			fi
		done
		pending=()
		;;
	esac
done < <(go test -list '^Fuzz' $packages)
if [[ ${#targets[@]} -eq 0 ]]; then
	echo "no fuzz targets in $packages matching $match" >&2
	exit 1
fi

echo "fuzzing ${#targets[@]} targets for $fuzz_time each" | tee "$summary"
failed=0
for t in "${targets[@]}"; do
	pkg="${t%%:*}"
	name="${t##*:}"
	log="$(mktemp "${TMPDIR:-/tmp}/tollgate-fuzz-$name.XXXXXX")"
	start=$(date +%s)
	if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzz_time" "${workers[@]}" "$pkg" >"$log" 2>&1; then
		result="ok"
	else
		result="FAIL (log: $log)"
		failed=1
	fi
	execs="$(grep -o 'execs: [0-9]*' "$log" | tail -1 || true)"
	if [[ $result == ok ]]; then
		rm -f "$log"
	fi
	printf '%-16s %-30s %5ss  %s %s\n' "$name" "$pkg" "$(($(date +%s) - start))" "$result" "$execs" | tee -a "$summary"
done
exit "$failed"
