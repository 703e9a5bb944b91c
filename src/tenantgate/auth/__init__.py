"""API keys and the cache that turns a bearer key into a Principal."""
