-- POSTs a different transaction each time (ids and cards vary, so window state grows as in production).
local counter = 0
local thread_id = 0
setup = function(thread) thread:set("tid", thread_id); thread_id = thread_id + 1 end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"transaction_id":"w%d-%d","timestamp":"2018-08-08T%02d:%02d:%02d+00:00","customer_id":"c%d","terminal_id":"t%d","amount":%d.%02d}',
    tid or 0, counter, (counter // 3600) % 24, (counter // 60) % 60, counter % 60, counter % 997, counter % 1999,
    10 + counter % 190, counter % 100)
  return wrk.format("POST", "/v1/score", {["Content-Type"] = "application/json", ["X-API-Key"] = "bench-key"}, body)
end
