-- wrk script for bench_api.py: prints one JSON line with the figures bench_api.py reads
-- (wrk's own report has no p95). On its own, for scenarios with one fixed URL: wrk then
-- sends a prebuilt request without calling Lua per request.

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, errors,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
