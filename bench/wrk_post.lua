-- POSTs a different transaction each time (ids and cards vary, so window state grows as in production).
-- wrk runs LuaJIT (Lua 5.1): no integer division operator, hence math.floor.
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format(
    '{"transaction_id":"w%d-%d","timestamp":"2018-08-08T%02d:%02d:%02d+00:00","customer_id":"c%d","terminal_id":"t%d","amount":%d.%02d}',
    math.random(1, 1000000000), counter, math.floor(counter / 3600) % 24, math.floor(counter / 60) % 60,
    counter % 60, counter % 997, counter % 1999, 10 + counter % 190, counter % 100)
  return wrk.format("POST", "/v1/score", {["Content-Type"] = "application/json", ["X-API-Key"] = "bench-key"}, body)
end

local failures = 0
response = function(status, headers, body)
  if status ~= 200 and failures < 3 then
    failures = failures + 1
    io.stderr:write("HTTP " .. status .. ": " .. body .. "\n")
  end
end
