-- Non-streaming chat completion, 16 output tokens. The key comes from the BENCH_KEY environment variable.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "none")
wrk.body = '{"model": "sim-small", "messages": [{"role": "user", "content": "Say hello to the benchmark"}], "max_tokens": 16}'
