-- wrk: GET each path of the file given after `--` in turn (each thread starts at its own
-- place), count the answers by status, and print the figures bench/harness.py reads.
local threads = {}
local paths = {}
local next_path = 1
statuses = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then table.insert(paths, line) end
  end
  next_path = (id * math.floor(#paths / 2)) % #paths + 1
end

function request()
  local path = paths[next_path]
  next_path = next_path % #paths + 1
  return wrk.format("GET", path)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("bench requests %d\n", summary.requests))
  io.write(string.format("bench duration_us %d\n", summary.duration))
  io.write(string.format("bench p50_us %d\n", latency:percentile(50)))
  io.write(string.format("bench p99_us %d\n", latency:percentile(99)))
  io.write(string.format("bench errors %d\n",
    errors.connect + errors.read + errors.write + errors.timeout))
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
  end
  for status, count in pairs(total) do
    io.write(string.format("bench status %d %d\n", status, count))
  end
end
