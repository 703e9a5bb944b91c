"""Usage events: built per request, buffered in memory, written in batches off the request path."""
