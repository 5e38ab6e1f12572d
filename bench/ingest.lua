-- ingest.lua: wrk script for the ingest and sink-anchor benchmarks.
-- POSTs one event of exactly BENCH_BODY_BYTES (default 512) bytes:
--   {"type":"user.created","data":{"pad":"xxxx..."}}
-- with Authorization: Bearer $BENCH_KEY (when set) and a JSON content type.
local size = tonumber(os.getenv("BENCH_BODY_BYTES") or "512")
local key = os.getenv("BENCH_KEY")
local head = '{"type":"user.created","data":{"pad":"'
local tail = '"}}'
local pad = size - #head - #tail
if pad < 0 then pad = 0 end
wrk.method = "POST"
wrk.body = head .. string.rep("x", pad) .. tail
wrk.headers["Content-Type"] = "application/json"
if key and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end

-- Non-2xx answers are counted by wrk; print them so a run that only measured
-- errors cannot pass unnoticed.
function done(summary, latency, requests)
  io.write(string.format("BENCH_SUMMARY requests=%d errors_status=%d errors_connect=%d errors_read=%d errors_write=%d errors_timeout=%d duration_us=%d\n",
    summary.requests, summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, summary.duration))
  io.write(string.format("BENCH_LATENCY p50_us=%d p99_us=%d max_us=%d\n",
    latency:percentile(50), latency:percentile(99), latency.max))
end
