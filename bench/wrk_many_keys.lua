-- The chat completion of wrk_chat.lua, each request with the next of the keys in BENCH_KEYS
-- (separated by spaces): many tenants' keys in turn rather than one.
local keys = {}
for key in string.gmatch(os.getenv("BENCH_KEYS") or "none", "%S+") do
  keys[#keys + 1] = key
end
local body = '{"model": "sim-small", "messages": [{"role": "user", "content": "Say hello to the benchmark"}], "max_tokens": 16}'
local next_key = 0

function request()
  next_key = next_key % #keys + 1
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. keys[next_key]}
  return wrk.format("POST", nil, headers, body)
end
