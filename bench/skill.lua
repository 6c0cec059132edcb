-- wrk script: Kakao skill requests from a pool of customers, each message distinct.
-- env: BENCH_PAYLOAD (file), BENCH_SECRET, BENCH_USERS (pool size), BENCH_RATE (req/s, 0 = flat out),
--      BENCH_CONNECTIONS (to spread the rate over connections)
local payload = io.open(os.getenv("BENCH_PAYLOAD")):read("*a")
local secret = os.getenv("BENCH_SECRET") or ""
local users = tonumber(os.getenv("BENCH_USERS") or "2000")
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local connections = tonumber(os.getenv("BENCH_CONNECTIONS") or "50")
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Dangol-Skill-Secret"] = secret
  math.randomseed(os.time() + thread_id * 7919)
end

function request()
  counter = counter + 1
  local user = string.format("bench-user-%d-%05d", thread_id, math.random(users))
  local body = payload:gsub("__USER__", user):gsub("__TEXT__", "에어컨 점검 문의 " .. thread_id .. "-" .. counter)
  return wrk.format(nil, nil, nil, body)
end

if rate > 0 then
  function delay()
    -- Each connection waits its share, so the offered load is about `rate` requests/s.
    return math.floor(connections * 1000 / rate)
  end
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("BENCH_OUT"), "w")
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "errors_connect": %d, "errors_read": %d, "errors_write": %d, ' ..
    '"errors_status": %d, "errors_timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
  out:close()
end
