-- Non-streaming chat completion, 16 output tokens. The key comes from the BENCH_KEY environment
-- variable; BENCH_HEADERS ("Name: value" lines) adds a peer's own headers, replacing the key's.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "none")
for name, value in string.gmatch(os.getenv("BENCH_HEADERS") or "", "([^:\n]+):%s*([^\n]*)") do
  wrk.headers[name] = value
end
wrk.body = '{"model": "sim-small", "messages": [{"role": "user", "content": "Say hello to the benchmark"}], "max_tokens": 16}'
