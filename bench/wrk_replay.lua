-- Replays the transactions of a JSON Lines file (one body a line), in order, cycling; each pass gets
-- fresh transaction ids so no request is a redelivery. Set BODIES to the file's path.
local bodies = {}
for line in io.lines(os.getenv("BODIES")) do bodies[#bodies + 1] = line end
local counter = 0
request = function()
  counter = counter + 1
  local index = (counter - 1) % #bodies + 1
  local pass = math.floor((counter - 1) / #bodies)
  local body = string.gsub(bodies[index], '"transaction_id": *"([^"]*)"', '"transaction_id":"%1-' .. pass .. '"', 1)
  return wrk.format("POST", "/v1/score", {["Content-Type"] = "application/json", ["X-API-Key"] = "bench-key"}, body)
end

local failures = 0
response = function(status, headers, body)
  if status ~= 200 and failures < 3 then
    failures = failures + 1
    io.stderr:write("HTTP " .. status .. ": " .. body .. "\n")
  end
end
