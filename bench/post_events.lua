-- post_events.lua — wrk script: POST /api/events batches of BATCH events
-- (default 100) over 610 users and the first 9,000 item ids of
-- ml-latest-small that exist (the ids are taken from the catalogue file).
local batch = tonumber(os.getenv("BATCH") or "100")
local items = {}
local f = io.open(os.getenv("ITEMS_FILE") or "items.txt")
for line in f:lines() do items[#items + 1] = line end
f:close()
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
request = function()
  local parts = {}
  for i = 1, batch do
    counter = counter + 1
    local u = (counter * 7919) % 610 + 1
    local it = items[(counter * 104729) % #items + 1]
    parts[i] = string.format('{"user":"%d","item":"%s","kind":"view"}', u, it)
  end
  return wrk.format(nil, "/api/events", nil, '{"events":[' .. table.concat(parts, ",") .. ']}')
end
