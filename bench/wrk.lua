-- wrk script of bench/load.sh, used for every target so they all pay the
-- same (tiny) scripting cost. BENCH_HOST and BENCH_API_KEY, when set, add the
-- Host and X-API-Key headers the Tollgate worker routes and authenticates on.
-- done() prints one machine-readable line with the exact percentiles.
local host = os.getenv("BENCH_HOST")
local key = os.getenv("BENCH_API_KEY")
if host and host ~= "" then
  wrk.headers["Host"] = host
end
if key and key ~= "" then
  wrk.headers["X-API-Key"] = key
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_timeout=%d err_status=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
    e.connect, e.read, e.write, e.timeout, e.status))
end
