-- recs.lua — wrk script: GET recommendations for a random user of
-- ml-latest-small (1..610), so that no cache of one user's answer helps.
-- env: KEY (an API key), MODEL (a model's name; empty: the active one).
local model = os.getenv("MODEL") or ""
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
math.randomseed(os.time())
request = function()
  local path = "/api/users/" .. math.random(1, 610) .. "/recommendations?k=10"
  if model ~= "" then path = path .. "&model=" .. model end
  return wrk.format("GET", path)
end
